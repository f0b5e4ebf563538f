"""A study's answers, labels and workers as tables, and its quality figures: what the exports and the API serve."""
from __future__ import annotations

import pandas as pd

from annotation.models import Study
from annotation.selectors.quality import study_cost_estimate, study_savings
from annotation.selectors.studies import study_answers, study_conf
from annotation.selectors.task_grid import LabelWords, task_class_name
from annotation.task_kinds import get_task_kind

ANSWER_COLUMNS = ["task", "task_key", "class_name", "worker", "worker_backend", "assignment", "state", "flag", "gold"]
TIME_COLUMNS = ["shown_at", "submitted_at", "seconds"]


def study_answer_records(*, study: Study) -> list[dict]:
    """One record per answer, the kind's fields nested under ``fields``."""
    records = []
    for a in study_answers(study=study):
        records.append({
            "task": a.task_id,
            "task_key": a.task.key,
            "class_name": task_class_name(a.task.payload),
            "worker": str(a.worker),
            "worker_backend": a.worker.backend,
            "assignment": a.assignment_id,
            "state": a.assignment.state,
            "flag": a.flag,
            "gold": a.task.is_gold,
            "fields": a.payload,
            "shown_at": a.shown_at.isoformat(),
            "submitted_at": a.submitted_at.isoformat(),
            "seconds": round((a.submitted_at - a.shown_at).total_seconds(), 3),
        })
    return records


def study_answers_table(*, study: Study) -> pd.DataFrame:
    """Long format, one row per answer, the kind's fields as columns."""
    records = study_answer_records(study=study)
    fields = [f.name for f in get_task_kind(study.kind).answer_fields(study_conf(study=study))]
    rows = [{**{k: r[k] for k in ANSWER_COLUMNS}, **{f: r["fields"].get(f) for f in fields},
             **{k: r[k] for k in TIME_COLUMNS}} for r in records]
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS + fields + TIME_COLUMNS)


def study_labels_table(*, study: Study) -> pd.DataFrame:
    """One row per task of the last aggregation: its class (when the kind shows one), the label and the
    Dawid-Skene label as stored and in the task page's words (``label_words``, ``ds_label_words``), counts."""
    rows = []
    words = LabelWords.of(study)
    results = study.results.select_related("task").order_by("task_id")
    values = (get_task_kind(study.kind).label_choices(study_conf(study=study))
              or sorted({v for r in results for v in r.counts}))
    for r in results:
        rows.append({
            "task": r.task_id, "task_key": r.task.key, "label": r.label or None, "tie": r.tie,
            "complete": r.complete, "n_answers": r.n_answers,
            **{f"count_{v}": r.counts.get(v, 0) for v in values},
            "ds_label": r.ds_label or None, "ds_probability": r.ds_probability,
            "gold": r.task.is_gold, "stopped_early": r.task.stopped_early,
            "class_name": task_class_name(r.task.payload), "label_words": words(r.label) or None,
            "ds_label_words": words(r.ds_label) or None, "agreement": r.agreement,
        })
    return pd.DataFrame(rows, columns=["task", "task_key", "label", "tie", "complete", "n_answers"]
                        + [f"count_{v}" for v in values] + QUALITY_LABEL_COLUMNS)


QUALITY_LABEL_COLUMNS = ["ds_label", "ds_probability", "gold", "stopped_early", "class_name", "label_words",
                         "ds_label_words", "agreement"]
WORKER_COLUMNS = ["worker", "backend", "answers", "flagged_answers", "majority_agreement", "gold_answers",
                  "gold_accuracy", "ds_accuracy", "excluded"]


def study_workers_table(*, study: Study) -> pd.DataFrame:
    """One row per worker from the last aggregation: agreement with the majority, gold and Dawid-Skene accuracy."""
    rows = (study.quality or {}).get("worker_table", [])
    return pd.DataFrame([{k: r.get(k) for k in WORKER_COLUMNS} for r in rows], columns=WORKER_COLUMNS)


def study_quality_summary(*, study: Study) -> dict:
    """Study-level quality figures: agreement, early-stopping savings, cost estimate, quality settings."""
    report = {k: v for k, v in (study.quality or {}).items() if k != "worker_table"}
    return {
        **report,
        "early_stopping": study_savings(study=study),
        "cost_estimate": study_cost_estimate(study=study),
        "settings": study_quality_settings(study=study),
    }


def study_quality_settings(*, study: Study) -> dict:
    """The study's crowd backend and quality-control settings."""
    return {
        "backend": study.backend, "gold_rate": study.gold_rate, "gold_min_accuracy": study.gold_min_accuracy,
        "gold_min_answers": study.gold_min_answers, "max_tasks_per_worker": study.max_tasks_per_worker,
        "min_answer_seconds": study.min_answer_seconds, "max_answer_seconds": study.max_answer_seconds,
        "early_stopping": study.early_stopping,
    }
