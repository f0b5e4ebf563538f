"""A study's answers and labels as tables, and the files of its export archive."""
from __future__ import annotations

import pandas as pd

from analysis.exports import records_to_json, table_to_csv
from annotation import selectors
from annotation.models import Study
from annotation.task_kinds import get_task_kind

ANSWER_COLUMNS = ["task", "task_key", "worker", "worker_backend", "assignment", "state"]
TIME_COLUMNS = ["shown_at", "submitted_at", "seconds"]


def study_answer_records(*, study: Study) -> list[dict]:
    """One record per answer, the kind's fields nested under ``fields``."""
    records = []
    for a in selectors.study_answers(study=study):
        records.append({
            "task": a.task_id,
            "task_key": a.task.key,
            "worker": str(a.worker),
            "worker_backend": a.worker.backend,
            "assignment": a.assignment_id,
            "state": a.assignment.state,
            "fields": a.payload,
            "shown_at": a.shown_at.isoformat(),
            "submitted_at": a.submitted_at.isoformat(),
            "seconds": round((a.submitted_at - a.shown_at).total_seconds(), 3),
        })
    return records


def study_answers_table(*, study: Study) -> pd.DataFrame:
    """Long format, one row per answer, the kind's fields as columns."""
    records = study_answer_records(study=study)
    fields = [f.name for f in _answer_fields(study)]
    rows = [{**{k: r[k] for k in ANSWER_COLUMNS}, **{f: r["fields"].get(f) for f in fields},
             **{k: r[k] for k in TIME_COLUMNS}} for r in records]
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS + fields + TIME_COLUMNS)


def _answer_fields(study: Study) -> list:
    task = study.tasks.first()
    return get_task_kind(study.kind).answer_fields(task) if task is not None else []


def study_labels_table(*, study: Study) -> pd.DataFrame:
    rows = []
    results = study.results.select_related("task").order_by("task_id")
    values = sorted({v for r in results for v in r.counts})
    for r in results:
        rows.append({
            "task": r.task_id, "task_key": r.task.key, "label": r.label or None, "tie": r.tie,
            "complete": r.complete, "n_answers": r.n_answers,
            **{f"count_{v}": r.counts.get(v, 0) for v in values},
        })
    return pd.DataFrame(rows, columns=["task", "task_key", "label", "tie", "complete", "n_answers"]
                        + [f"count_{v}" for v in values])


def study_export_files(*, study: Study) -> dict[str, str]:
    """Name -> content of every export file of the study."""
    labels = study_labels_table(study=study)
    return {
        "answers.csv": table_to_csv(study_answers_table(study=study)),
        "answers.json": records_to_json(study_answer_records(study=study)),
        "labels.csv": table_to_csv(labels),
        "labels.json": records_to_json(labels.astype(object).where(labels.notna(), None).to_dict(orient="records")),
    }
