"""Studies: creation and the researcher's lifecycle verbs (compute, launch, close, aggregate)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings as django_settings
from django.db import transaction

from annotation import selectors
from annotation.errors import ApplicationError, Conflict
from annotation.models import Assignment, Job, Study, StudyResult, Worker
from annotation.recruiters import by_name, recruiter_for
from annotation.recruiters.prolific import new_completion_code
from annotation.selectors.quality import study_quality_report
from annotation.selectors.stopping_policy import with_stop_labels
from annotation.services.crowd import artifacts_make_public, enqueue_recruitment
from annotation.services.jobs import enqueue_job, job_run, jobs_active
from annotation.services.registry import RegistryError, study_inputs
from annotation.services.slots import release_slot
from annotation.states import study_transition, transition_check
from annotation.task_kinds import get_task_kind
from annotation.task_kinds.benchmark import validation_missing

A = Assignment.State

def study_create(
    *,
    owner,
    name: str,
    kind: str,
    settings: Mapping[str, Any] | None = None,
    workers_per_task: int = 5,
    reward_cents: int = 0,
    assignment_seconds: int | None = None,
    backend: str = Worker.Backend.INTERNAL,
    gold_rate: float | None = None,
    gold_min_accuracy: float = 0.6,
    gold_min_answers: int = 3,
    max_tasks_per_worker: int | None = None,
    min_answer_seconds: float = 0.0,
    max_answer_seconds: float | None = None,
    early_stopping: bool = False,
    completion_code: str = "",
    recruitment: Mapping[str, Any] | None = None,
    consent_text: str = "",
) -> Study:
    task_kind = get_task_kind(kind)
    settings = {**task_kind.default_settings(), **(settings or {})}
    gold_rate = task_kind.default_gold_rate if gold_rate is None else gold_rate
    inputs = study_inputs(owner=owner, conf=settings, needs_conv_map=task_kind.needs_conv_map)
    if inputs and (problem := validation_missing(inputs["dataset"], task_kind.validation_use(settings))):
        raise RegistryError(problem, "dataset")
    if inputs and (refused := task_kind.inputs_problem(settings, inputs)):
        raise RegistryError(refused[1], refused[0])
    if inputs and not inputs["dataset"]["builtin"]:
        settings["num_classes"] = len(inputs["dataset"]["classes"])  # the answer schema of some kinds needs it
    if Study.objects.filter(owner=owner, name=name).exists():
        raise Conflict(f"you already have a study named {name!r}")
    if workers_per_task < 1:
        raise ApplicationError("workers per task must be at least 1")
    try:
        by_name(backend)
    except KeyError as exc:
        raise ApplicationError(str(exc.args[0])) from exc
    if not 0 <= gold_rate < 1:
        raise ApplicationError(f"the gold rate must be in [0, 1), not {gold_rate}")
    if not 0 <= gold_min_accuracy <= 1:
        raise ApplicationError(f"the minimum gold accuracy must be in [0, 1], not {gold_min_accuracy}")
    if max_answer_seconds is not None and max_answer_seconds <= (min_answer_seconds or 0):
        raise ApplicationError("the maximum answer time must be longer than the minimum answer time")
    if max_tasks_per_worker is not None and max_tasks_per_worker < 1:
        raise ApplicationError("the per-worker cap must be at least 1 task (leave it empty for none)")
    return Study.objects.create(
        owner=owner,
        name=name,
        kind=kind,
        settings=settings,
        workers_per_task=workers_per_task,
        reward_cents=reward_cents,
        assignment_seconds=assignment_seconds or django_settings.SALIENT_ASSIGNMENT_SECONDS,
        backend=backend,
        gold_rate=gold_rate,
        gold_min_accuracy=gold_min_accuracy,
        gold_min_answers=gold_min_answers,
        max_tasks_per_worker=max_tasks_per_worker,
        min_answer_seconds=min_answer_seconds or 0.0,
        max_answer_seconds=max_answer_seconds,
        early_stopping=early_stopping,
        completion_code=completion_code or new_completion_code(),
        recruitment=dict(recruitment or {}),
        consent_text=(consent_text or "").strip(),
    )


def study_start_computing(*, study: Study) -> Job:
    """Move the study to ``computing`` and queue its evidence job (after the commit)."""
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        study_transition(study=study, to=Study.State.COMPUTING)
        return enqueue_job(study=study, name="evidence")


def study_launch(*, study: Study) -> Study:
    """Go live: the study's artifacts become viewable by crowd workers and its recruiter opens (a job)."""
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        if study.state == Study.State.READY and not study.tasks.exists():
            raise ApplicationError(f"study {study.name!r} has no tasks to launch")
        if problem := recruiter_for(study).launch_problem(study):
            raise ApplicationError(problem)
        if problem := get_task_kind(study.kind).launch_problem(selectors.study_conf(study=study), backend=study.backend,
                                                               **selectors.study_launch_facts(study=study)):
            raise ApplicationError(problem)
        study = study_transition(study=study, to=Study.State.LIVE)
        artifacts_make_public(study=study)
        enqueue_recruitment(study=study, verb="open")
        return study


def study_close(*, study: Study) -> Study:
    """Stop handing out tasks; open assignments expire and their late submissions are refused."""
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        study_transition(study=study, to=Study.State.CLOSED)
        enqueue_recruitment(study=study, verb="close")
    for pk in Assignment.objects.filter(task__study=study, state=A.ASSIGNED).values_list("pk", flat=True):
        release_slot(assignment_id=pk, to=A.EXPIRED)
    return study


def study_start_aggregation(*, study: Study) -> Job:
    """Queue the aggregation job (a closed or aggregated study) and return it; without a broker it has run
    when this returns. An aggregation job already queued or running is returned instead of a second one."""
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        transition_check(study=study, to=Study.State.AGGREGATED)
        active = jobs_active(study=study, name="aggregate").first()
        return active or enqueue_job(study=study, name="aggregate")


def study_run_aggregation(*, job: Job) -> None:
    """The aggregation job: :func:`study_aggregate` with its progress on the dashboard; safe to run twice."""
    def work(progress):
        transition_check(study=job.study, to=Study.State.AGGREGATED)  # reopened meanwhile: fail before the work
        study = study_aggregate(study=job.study, progress=progress)
        return {"message": f"{study.results.exclude(label='').count()} of {study.results.count()} tasks labelled"}

    job_run(job=job, work=work)


def study_aggregate(*, study: Study, progress: Callable[[int, int, str], None] | None = None) -> Study:
    """Aggregate the accepted answers into one result per task and move to ``aggregated``.

    Runs where it is called (the aggregation job, ``export_labels --aggregate``); the dashboard, the API and
    ``manage.py study aggregate`` queue it with :func:`study_start_aggregation`.
    """
    step = progress or (lambda done, total, message="": None)
    kind = get_task_kind(study.kind)
    step(0, 4, "reading the answers")
    answers = selectors.study_label_answers(study=study, label_field=kind.label_field)
    step(1, 4, f"majority vote over {len(answers)} answers")
    table = with_stop_labels(study, kind.aggregate(answers, selectors.study_conf(study=study)))
    step(2, 4, "Dawid-Skene and agreement")
    report, ds = study_quality_report(study=study)
    step(3, 4, f"storing {len(table)} labels")
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        study_transition(study=study, to=Study.State.AGGREGATED)
        Study.objects.filter(pk=study.pk).update(quality=report)
        StudyResult.objects.filter(study=study).delete()
        count_cols = [c for c in table.columns if c.startswith("count_")]
        results = []
        for task in study.tasks.all():
            if task.pk in table.index:
                row = table.loc[task.pk]
                label = row["label"]
                counts = {c.removeprefix("count_"): int(row[c]) for c in count_cols}
                ds_label = ds.labels_.get(task.pk) if len(ds.labels_) else None
                results.append(StudyResult(
                    study=study, task=task, label="" if label is None else str(label), tie=bool(row["tie"]),
                    complete=bool(row["complete"]) or (task.stopped_early and int(row["n_answers"]) >= task.wanted),
                    n_answers=int(row["n_answers"]),
                    counts=counts, agreement=StudyResult.agreement_of(counts, int(row["n_answers"])),
                    ds_label="" if ds_label is None else str(ds_label),
                    ds_probability=None if ds_label is None else round(float(ds.confidence_[task.pk]), 6),
                ))
            else:
                results.append(StudyResult(study=study, task=task, complete=False, n_answers=0, counts={}))
        StudyResult.objects.bulk_create(results)
        if kind.has_outputs:
            enqueue_job(study=study, name="outputs")
    return study

