"""Reads of the annotation app; each returns a QuerySet, a row or a plain table."""
from __future__ import annotations

from typing import Any

import pandas as pd
from django.db.models import Count, Exists, F, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from annotation.models import Answer, Assignment, Job, Study, Task, Worker
from annotation.task_kinds import get_task_kind

A = Assignment.State
COUNTED = (A.SUBMITTED, A.APPROVED)


class NotFound(Http404):
    """Something that does not exist, or that the asker may not see (answered as 404)."""

    status = 404

    @property
    def message(self) -> str:
        return str(self)


def study_list(*, user) -> QuerySet[Study]:
    """The researcher's studies, newest first, each with ``n_tasks``, answers ``received`` (counted) and ``wanted``
    (gold tasks left out, as on the dashboard), in one query."""
    tasks = Task.objects.filter(study=OuterRef("pk"), is_gold=False).values("study")
    counted = (Assignment.objects.filter(task__study=OuterRef("pk"), task__is_gold=False, state__in=COUNTED)
               .values("task__study").annotate(n=Count("pk")).values("n"))
    return Study.objects.filter(owner=user).order_by("-created_at").annotate(
        n_tasks=Coalesce(Subquery(tasks.annotate(n=Count("pk")).values("n")), 0),
        wanted=Coalesce(Subquery(tasks.annotate(n=Sum("wanted")).values("n")), 0),
        received=Coalesce(Subquery(counted), 0))


def study_get(*, user, pk: int) -> Study:
    """The study ``pk`` if ``user`` owns it; otherwise 404, so others' studies stay invisible."""
    study = Study.objects.filter(pk=pk, owner=user).first()
    if study is None:
        raise NotFound("no such study of yours")
    return study


def worker_of(user) -> Worker | None:
    if not user.is_authenticated:
        return None
    return Worker.objects.filter(user=user).first()


def artifact_visible_to(*, user, artifact) -> bool:
    """A non-public artifact is for the owner of a study whose own stored evidence made it (its tasks' images,
    :attr:`Study.artifacts`, or one of its files) and for a worker holding an open assignment in such a study.
    Text in task payloads never grants access."""
    if artifact.public or user.is_superuser:
        return True
    using = Study.objects.filter(Q(artifacts=artifact) | Q(outputs__artifact=artifact))
    if using.filter(owner=user).exists():
        return True
    worker = worker_of(user)
    return worker is not None and Assignment.objects.filter(
        worker=worker, state=Assignment.State.ASSIGNED, task__study__artifacts=artifact).exists()


def assignment_open_for(*, worker: Worker) -> Assignment | None:
    return (
        Assignment.objects.filter(
            worker=worker, state=A.ASSIGNED, expires_at__gte=timezone.now(), task__study__state=Study.State.LIVE
        )
        .select_related("task__study")
        .first()
    )


def tasks_open_for(*, worker: Worker, study: Study | None = None) -> QuerySet[Task]:
    """Tasks of live studies with a free slot that the worker has not had and may do.

    Only studies recruiting through the worker's own backend, not excluding the worker, whose owner
    has not blocked the worker, whose consent text the worker did not decline, and where the worker is
    below the study's per-worker cap. Tasks whose
    payload names an ``exclusion_group`` are mutually exclusive within their study: a worker who had
    (in any state) one task of a group is never offered another (e.g. two conditions of one image).
    """
    tasks = (
        Task.objects.filter(study__state=Study.State.LIVE, filled__lt=F("wanted"), study__backend=worker.backend)
        .exclude(assignments__worker=worker)
        .exclude(study__excluded_workers=worker)
        .exclude(study__owner__blocked_workers__worker=worker)
        .exclude(study__consents__worker=worker, study__consents__agreed=False)
        .exclude(Exists(Assignment.objects.filter(
            worker=worker, task__study=OuterRef("study"), task__exclusion_group=OuterRef("exclusion_group"),
        ).exclude(task__exclusion_group="")))
    )
    if study is not None:
        tasks = tasks.filter(study=study)
    capped = worker_capped_studies(worker=worker)
    if capped:
        tasks = tasks.exclude(study__in=capped)
    return tasks.order_by("study__created_at", "-filled", "id")


def worker_had_exclusion_sibling(*, worker: Worker, task: Task) -> bool:
    """Whether the worker had another task of ``task``'s ``exclusion_group`` in its study (see above)."""
    if not task.exclusion_group:
        return False
    return Assignment.objects.filter(worker=worker, task__study_id=task.study_id,
                                     task__exclusion_group=task.exclusion_group).exclude(task=task).exists()


#: Assignment states that count towards a per-worker cap and the gold mix (returned/expired do not).
TAKEN = (A.ASSIGNED, A.SUBMITTED, A.APPROVED, A.REJECTED)


def worker_capped_studies(*, worker: Worker) -> list[int]:
    """Ids of live studies where the worker reached the per-worker cap (gold tasks are not counted)."""
    rows = (
        Assignment.objects.filter(worker=worker, state__in=TAKEN, task__is_gold=False,
                                  task__study__state=Study.State.LIVE, task__study__max_tasks_per_worker__isnull=False)
        .values("task__study", "task__study__max_tasks_per_worker")
        .annotate(n=Count("id"))
    )
    return [r["task__study"] for r in rows if r["n"] >= r["task__study__max_tasks_per_worker"]]


def worker_study_counts(*, worker: Worker, study: Study) -> tuple[int, int]:
    """(tasks taken, gold tasks taken) by the worker in the study, for the gold mix-in."""
    taken = Assignment.objects.filter(worker=worker, task__study=study, state__in=TAKEN)
    agg = taken.aggregate(n=Count("id"), gold=Count("id", filter=Q(task__is_gold=True)))
    return agg["n"], agg["gold"]


def study_progress(*, study: Study) -> dict[str, Any]:
    """Answers received and wanted, per task and in total, and the latest job's progress."""
    rows = task_progress_rows(tasks=study.tasks.filter(is_gold=False).order_by("id"))
    wanted = sum(r["wanted"] for r in rows)
    received = sum(r["received"] for r in rows)
    job = study.jobs.order_by("-created_at").first()
    return {
        "state": study.state,
        "received": received,
        "wanted": wanted,
        "fraction": received / wanted if wanted else 0.0,
        "tasks": rows,
        "job": None if job is None else job_summary(job),
    }


def task_progress_rows(*, tasks: QuerySet[Task]) -> list[dict[str, Any]]:
    """Answers received (submitted or approved) and open per task of ``tasks``, in one query."""
    tasks = tasks.annotate(
        received=Count("assignments", filter=Q(assignments__state__in=COUNTED)),
        open=Count("assignments", filter=Q(assignments__state=A.ASSIGNED)),
    )
    return [{"id": t.pk, "key": t.key, "received": t.received, "open": t.open, "wanted": t.wanted,
             "approved": t.approved, "is_gold": t.is_gold, "truth": t.truth} for t in tasks]


def study_answers(*, study: Study) -> QuerySet[Answer]:
    return (
        Answer.objects.filter(task__study=study)
        .select_related("task", "worker__user", "assignment")
        .order_by("task_id", "submitted_at", "id")
    )


def study_label_answers(*, study: Study, label_field: str) -> pd.DataFrame:
    """Accepted answers as a long ``task, worker, label`` table (rejected answers left out)."""
    rows = (Answer.objects.filter(task__study=study, assignment__state__in=COUNTED)
            .order_by("task_id", "submitted_at", "id").values_list("task_id", "worker_id", "payload"))
    data = [{"task": task, "worker": worker, "label": payload.get(label_field)} for task, worker, payload in rows]
    return pd.DataFrame(data, columns=["task", "worker", "label"])


def study_launch_facts(*, study: Study) -> dict[str, Any]:
    """What a kind's ``launch_problem`` is told: the gold copies the study will mix in (0 at a gold rate of 0)
    and the payload of its first task (e.g. whether the HIT shows solved examples)."""
    tasks = study.tasks.order_by("pk")
    return {"gold_tasks": tasks.filter(is_gold=True).count() if study.gold_rate > 0 else 0,
            "payload": tasks.filter(is_gold=False).values_list("payload", flat=True).first() or {}}


def study_conf(*, study: Study) -> dict[str, Any]:
    """The study's settings as its kind sees them: the kind's defaults, the study's settings, workers per task."""
    return {**get_task_kind(study.kind).default_settings(), **study.settings,
            "workers_per_task": study.workers_per_task}


#: Sort orders of the answers table (API and dashboard); newest first by default.
ANSWER_ORDERS = {
    "newest": ("-submitted_at", "-id"), "oldest": ("submitted_at", "id"),
    "task": ("task_id", "id"), "worker": ("worker_id", "id"),
}
TASK_ORDERS = {"id": ("id",), "key": ("key", "id"), "received": ("-filled", "id"), "missing": ("filled", "id")}


def _order(orders: dict[str, tuple[str, ...]], order: str) -> tuple[str, ...]:
    if order not in orders:
        raise FilterError(f"unknown order {order!r}; use one of {', '.join(orders)}", "order")
    return orders[order]


class FilterError(Exception):
    """A filter value that names nothing; ``field`` is the parameter at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def _json_value(field: str, value: str) -> Q:
    """Match a JSON answer field holding ``value`` as text or as the number it spells."""
    condition = Q(**{f"payload__{field}": value})
    try:
        number = float(value)
    except ValueError:
        return condition
    return condition | Q(**{f"payload__{field}": int(number) if number.is_integer() else number})


def study_answers_filtered(*, study: Study, task: str = "", worker: str = "", state: str = "", label: str = "",
                           order: str = "newest") -> QuerySet[Answer]:
    """The study's answers filtered by task (id or key), worker (name, crowd id or id), assignment state and
    label value, sorted by ``order`` (see :data:`ANSWER_ORDERS`)."""
    answers = Answer.objects.filter(task__study=study).select_related("task", "worker__user", "assignment")
    if task:
        answers = answers.filter(Q(task__key=task) | (Q(task_id=as_id(task)) if as_id(task) else Q()))
    if worker:
        by_name = Q(worker__user__username=worker) | Q(worker__external_id=worker)
        answers = answers.filter(by_name | (Q(worker_id=as_id(worker)) if as_id(worker) else Q()))
    if state:
        if state not in A.values:
            raise FilterError(f"unknown status {state!r}; use one of {', '.join(A.values)}", "status")
        answers = answers.filter(assignment__state=state)
    if label:
        answers = answers.filter(_json_value(get_task_kind(study.kind).label_field, label))
    return answers.order_by(*_order(ANSWER_ORDERS, order))


def is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes "²", which ``int`` refuses."""
    return text.isascii() and text.isdigit()


#: The largest id a 64-bit primary key holds; a larger number names no row (and SQLite cannot bind it).
MAX_ID = 2**63 - 1


def as_id(text: str) -> int | None:
    """``text`` as a row id when it spells one (ASCII digits, at most :data:`MAX_ID`), else None."""
    return int(text) if is_number(text) and len(text) <= 19 and int(text) <= MAX_ID else None


def study_tasks_filtered(*, study: Study, key: str = "", gold: bool | None = None, order: str = "id") -> QuerySet[Task]:
    """The study's tasks whose key contains ``key``, gold or not, sorted by ``order`` (:data:`TASK_ORDERS`)."""
    tasks = study.tasks.all()
    if key:
        tasks = tasks.filter(key__icontains=key)
    if gold is not None:
        tasks = tasks.filter(is_gold=gold)
    return tasks.order_by(*_order(TASK_ORDERS, order))


def study_progress_summary(*, study: Study, file_url: str = "study_job_file") -> dict[str, Any]:
    """The poll's figures in a constant number of queries: answers received/wanted and the latest job
    (with the address of the file it made, by the URL name ``file_url``)."""
    totals = study.tasks.filter(is_gold=False).aggregate(wanted=Sum("wanted"), tasks=Count("id"))
    received = Assignment.objects.filter(task__study=study, task__is_gold=False, state__in=COUNTED).count()
    wanted = totals["wanted"] or 0
    job = study.jobs.order_by("-created_at").first()
    return {
        "state": study.state, "tasks": totals["tasks"], "received": received, "wanted": wanted,
        "fraction": received / wanted if wanted else 0.0,
        "job": None if job is None else job_summary(job, file_url=file_url),
    }


def job_summary(job, *, file_url: str = "study_job_file") -> dict[str, Any]:
    """A job's state and progress; ``file`` is the address of the file it made (an export), else ""."""
    return {"id": job.pk, "name": job.name, "state": job.state, "done": job.done, "total": job.total,
            "fraction": job.fraction, "message": job.message, "error": job.error,
            "file": reverse(file_url, args=[job.study_id, job.pk]) if job.artifact_id else ""}


def linked_study_labels(*, owner, name: str) -> dict | None:
    """Another study of the same researcher named in a setting (``labels_from``): its kind and its labels
    by task key (gold tasks left out), or None when the researcher has no study of that name."""
    linked = Study.objects.filter(owner=owner, name=name.strip()).first()
    if linked is None:
        return None
    labels = dict(linked.results.filter(task__is_gold=False).exclude(label="").values_list("task__key", "label"))
    return {"name": linked.name, "kind": linked.kind, "state": linked.state, "labels": labels}


def study_export_latest(*, study: Study, file: str) -> Job | None:
    """The newest export job of ``file`` that finished with its file stored, or None."""
    return (study.jobs.filter(name="export", state=Job.State.DONE, params__file=file, artifact__isnull=False)
            .select_related("artifact").order_by("-finished_at", "-pk").first())

def study_counts(*, study: Study) -> dict:
    """Tasks (and gold tasks), answers (counted, flagged), workers, and the first and last answer's time."""
    tasks = study.tasks.aggregate(tasks=Count("id"), gold=Count("id", filter=Q(is_gold=True)))
    answers = Answer.objects.filter(task__study=study).aggregate(
        answers=Count("id"), counted=Count("id", filter=Q(assignment__state__in=COUNTED)),
        flagged=Count("id", filter=~Q(flag="")), workers=Count("worker", distinct=True),
        first=Min("submitted_at"), last=Max("submitted_at"))
    return {**tasks, **answers}
