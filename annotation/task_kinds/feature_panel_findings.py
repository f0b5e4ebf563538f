"""What the feature-panel study's labels and reasons say beyond the labels themselves: the statistics
of §4 / Fig. 4 (:mod:`analysis.salient.label_stats`) and the workers' reasons (App. F,
:mod:`analysis.salient.reasons`), as output files and the results page's summary."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from analysis.exports import safe_csv_bytes
from analysis.salient.label_stats import label_statistics
from analysis.salient.reasons import top_words, view_mentions
from annotation.task_kinds.base import OutputFile, StudyContext

FINDINGS = "salient_findings.json"
REASON_COLUMNS = ["task_key", "class", "class_name", "feature", "rank", "label", "answer", "reason", "confidence"]


def panel_reasons(ctx: StudyContext, tasks: Mapping[int, Any], table: pd.DataFrame) -> pd.DataFrame:
    """One row per counted answer on a (non-gold) panel: the panel, its crowd label and the worker's answer,
    reason and confidence (App. F)."""
    answers = ctx.answers() if ctx.answers is not None else pd.DataFrame(columns=["task", "payload", "counted"])
    by_key = {row["task_key"]: row for row in table.to_dict("records")}
    rows = []
    for answer in answers[answers["counted"]].to_dict("records"):
        task = tasks.get(answer["task"])
        if task is None or task.key not in by_key:
            continue
        panel, payload = by_key[task.key], answer["payload"] or {}
        rows.append({"task_key": task.key, "class": panel["class"], "class_name": panel["class_name"],
                     "feature": panel["feature"], "rank": panel["rank"], "label": panel["label"],
                     "answer": payload.get("main", ""), "reason": str(payload.get("reason", "")).strip(),
                     "confidence": payload.get("confidence")})
    return pd.DataFrame(rows, columns=REASON_COLUMNS)


def findings_outputs(table: pd.DataFrame, reasons: pd.DataFrame, answer_labels: Mapping[str, str],
                     top: int = 10) -> tuple[list[OutputFile], dict]:
    """The CSV files of Fig. 4 (b–d) and of App. F's word counts, and the summary the results page shows
    (``answer_labels``: the HIT's words for each answer)."""
    stats = label_statistics(table)
    words = top_words(reasons, group="answer", top=top)
    matrix = stats["shared_matrix"]
    files = [
        OutputFile("spurious_per_class.csv", safe_csv_bytes(stats["per_class"]),
                   "Core and spurious features per class (§4)"),
        OutputFile("spurious_histogram.csv", safe_csv_bytes(stats["histogram"]),
                   "Classes by their number of spurious features (Fig. 4b)"),
        OutputFile("spurious_by_rank.csv", safe_csv_bytes(stats["by_rank"]),
                   "Spurious features and their share per feature rank (Fig. 4c)"),
        OutputFile("shared_spurious_matrix.csv", safe_csv_bytes(matrix.reset_index()),
                   "Spurious features shared between classes, classes x classes, diagonal zeroed (Fig. 4d)"),
        OutputFile("shared_spurious_features.csv", safe_csv_bytes(stats["shared_list"]),
                   "Neural features spurious for two or more classes (Fig. 4d)"),
        OutputFile("worker_reasons.csv", safe_csv_bytes(reasons), "Every counted answer's reason (App. F)"),
        OutputFile("reason_words.csv", safe_csv_bytes(words),
                   "Most frequent words of the reasons per answer, stop words removed (App. F)"),
    ]
    summary = {
        "counts": stats["counts"], "histogram": stats["histogram"].to_dict("records"),
        "by_rank": stats["by_rank"].to_dict("records"), "shared": stats["shared_list"].to_dict("records"),
        "matrix": {"classes": list(matrix.index),
                   "rows": [{"class": name, "values": row}
                            for name, row in zip(matrix.index, matrix.to_numpy().tolist())]},
        "words": [{"answer": answer, "answer_label": answer_labels.get(answer, answer),
                   "words": group.to_dict("records")} for answer, group in words.groupby("answer", sort=True)],
        "mentions": view_mentions(reasons["reason"]), "reasons": len(reasons),
    }
    return files, summary
