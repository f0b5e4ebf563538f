"""Quality-control reads of a study: agreement, Dawid-Skene, per-worker report, savings, cost.

Reads only (the aggregation service stores the report); the algorithms live in
``analysis.aggregation`` and know nothing of Django.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd
from django.db.models import Count, Q

from analysis.aggregation import MajorityVote
from analysis.aggregation.agreement import count_matrix, fleiss_kappa, krippendorff_alpha
from analysis.aggregation.dawid_skene import DawidSkene
from analysis.aggregation.worker_quality import worker_report
from annotation.models import Answer, Study, Worker
from annotation.recruiters import recruiter_for
from annotation.selectors import studies
from annotation.task_kinds import get_task_kind


def _label_values(study: Study) -> list[str] | None:
    return get_task_kind(study.kind).label_choices(studies.study_conf(study=study)) or None


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def study_gold_labels(study: Study) -> pd.Series:
    """Known labels of the study's gold tasks (task id -> label)."""
    field = get_task_kind(study.kind).label_field
    gold = {t.pk: (t.truth or {}).get(field) for t in study.tasks.filter(is_gold=True)}
    return pd.Series({k: v for k, v in gold.items() if v is not None}, dtype=object)


def study_quality_report(*, study: Study) -> tuple[dict[str, Any], DawidSkene]:
    """Agreement (Fleiss' kappa, Krippendorff's alpha), Dawid-Skene and the per-worker table.

    Everything here is on the scale of the answers' label field: Dawid-Skene and each worker are compared
    with the answers' plain majority, not with the kind's label (a feature panel's ``main`` answers
    become core/spurious labels, which no answer equals). Returns the JSON-able report and the fitted
    Dawid-Skene model (for the per-task labels).
    """
    kind = get_task_kind(study.kind)
    answers = studies.study_label_answers(study=study, label_field=kind.label_field).dropna(subset=["label"])
    values = _label_values(study)
    counts = count_matrix(answers, values)
    ds = DawidSkene().fit(answers)
    majority = MajorityVote(labels=values).fit(answers).table_["label"] if len(answers) else pd.Series(dtype=object)
    workers = worker_report(answers, majority, study_gold_labels(study), ds.worker_accuracy_)
    names = {w.pk: str(w) for w in Worker.objects.filter(pk__in=list(workers.index)).select_related("user")}
    backends = dict(Worker.objects.filter(pk__in=list(workers.index)).values_list("pk", "backend"))
    excluded = set(study.excluded_workers.values_list("pk", flat=True))
    flagged = dict(Answer.objects.filter(task__study=study).exclude(flag="").values("worker")
                   .annotate(n=Count("id")).values_list("worker", "n"))
    rows = []
    for worker_id, row in workers.iterrows():
        rows.append({
            "worker": names.get(worker_id, str(worker_id)), "worker_id": int(worker_id),
            "backend": backends.get(worker_id, ""),
            "answers": int(row["answers"]), "flagged_answers": int(flagged.get(worker_id, 0)),
            "majority_agreement": _round(row["majority_agreement"]),
            "gold_answers": int(row["gold_answers"]), "gold_accuracy": _round(row["gold_accuracy"]),
            "ds_accuracy": _round(row["ds_accuracy"]), "excluded": worker_id in excluded,
        })
    report = {
        "answers": int(len(answers)),
        "tasks": int(counts.shape[0]),
        "workers": len(rows),
        "fleiss_kappa": _round(fleiss_kappa(counts)),
        "krippendorff_alpha": _round(krippendorff_alpha(counts)),
        "ds_majority_agreement": _round(_agreement(ds.labels_, majority)),
        "early_stopping": study_savings(study=study),
        "worker_table": rows,
    }
    return report, ds


def _round(value: Any, digits: int = 4) -> float | None:
    value = _nan_to_none(float(value)) if value is not None else None
    return None if value is None else round(value, digits)


def _agreement(a: pd.Series, b: pd.Series) -> float:
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1).dropna()
    return float((joined["a"].astype(str) == joined["b"].astype(str)).mean()) if len(joined) else float("nan")


def study_savings(*, study: Study) -> dict[str, Any]:
    """Answers and money early stopping saved: tasks whose ``wanted`` it lowered below workers per task."""
    stopped = study.tasks.filter(is_gold=False, stopped_early=True)
    saved = sum(max(study.workers_per_task - t.wanted, 0) for t in stopped.only("wanted"))
    recruiter = recruiter_for(study)
    per_answer = study.reward_cents + recruiter.fee_cents(study.reward_cents, study.workers_per_task)
    return {
        "enabled": study.early_stopping,
        "tasks_stopped": stopped.count(),
        "answers_saved": int(saved),
        "cents_saved": round(saved * per_answer, 2),
    }


def study_cost_estimate(*, study: Study) -> dict[str, Any]:
    """Tasks x workers x reward + the backend's platform fee (gold answers at the gold rate on top)."""
    tasks = study.tasks.aggregate(n=Count("id", filter=Q(is_gold=False)), gold=Count("id", filter=Q(is_gold=True)))
    return recruiter_for(study).cost_estimate(
        tasks=tasks["n"], gold_tasks=tasks["gold"], workers_per_task=study.workers_per_task,
        reward_cents=study.reward_cents, gold_rate=study.gold_rate,
    )


def study_quality_live(*, study: Study) -> dict[str, Any]:
    """What quality control did so far: flagged answers by reason, excluded workers, gold accuracy."""
    flags = dict(Answer.objects.filter(task__study=study).exclude(flag="").values("flag")
                 .annotate(n=Count("id")).values_list("flag", "n"))
    field = get_task_kind(study.kind).label_field
    gold_rows = Answer.objects.filter(task__study=study, task__is_gold=True).values_list(
        "worker_id", "payload", "task__truth")
    per_worker: dict[int, list[bool]] = {}
    for worker_id, payload, truth in gold_rows:
        if truth and truth.get(field) is not None:
            per_worker.setdefault(worker_id, []).append(payload.get(field) == truth.get(field))
    names = {w.pk: str(w) for w in Worker.objects.filter(pk__in=list(per_worker)).select_related("user")}
    gold = [{"worker": names.get(w, str(w)), "gold_answers": len(v), "gold_accuracy": round(sum(v) / len(v), 4)}
            for w, v in sorted(per_worker.items())]
    return {
        "flags": flags,
        "excluded": [str(w) for w in study.excluded_workers.select_related("user")],
        "gold": gold,
        "gold_tasks": study.tasks.filter(is_gold=True).count(),
        "savings": study_savings(study=study),
    }
