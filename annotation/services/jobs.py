"""Jobs: queueing the Celery jobs of a study and running them (evidence, outputs, a kind's own jobs)."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from annotation.artifacts import artifact_store_bytes
from annotation.errors import ApplicationError
from annotation.models import GOLD_SLOTS, Artifact, Job, Study, StudyOutput, Task
from annotation.selectors.tables import study_labels_table
from annotation.services.contexts import study_context
from annotation.services.evidence import EvidenceDeferred
from annotation.services.registry import study_inputs
from annotation.states import study_transition
from annotation.task_kinds import OutputFile, TaskSpec, get_task_kind
from annotation.task_kinds.benchmark import validation_missing

log = logging.getLogger(__name__)

def job_progress(*, job_id: int, done: int, total: int, message: str = "") -> None:
    """Record progress; it is also the job's heartbeat (``updated_at``)."""
    Job.objects.filter(pk=job_id).update(done=min(done, total), total=total, message=message[:255],
                                         updated_at=timezone.now())


def study_compute_evidence(*, job: Job) -> None:
    """Run the study kind's evidence step and create its tasks; safe to run twice."""
    if job.state == Job.State.DONE:
        return
    study = job.study
    if study.state != Study.State.COMPUTING:
        log.warning("evidence job %s skipped: study %s is %s", job.pk, study.pk, study.state)
        return
    progress = _job_start(job)
    if progress is None:
        return
    try:
        ctx = study_context(study, job_id=job.pk)
        items = list(get_task_kind(study.kind).build_tasks(ctx, progress))
    except EvidenceDeferred as deferred:
        _job_wait(job_id=job.pk, deferred=deferred)
        return
    specs = [item for item in items if isinstance(item, TaskSpec)]
    files = [item for item in items if isinstance(item, OutputFile)]
    stored = _store_files(files)
    if not specs:
        raise ApplicationError(f"the evidence step of study {study.name!r} produced no tasks")
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        if study.state != Study.State.COMPUTING:
            return
        for spec in specs:
            Task.objects.update_or_create(
                study=study,
                key=spec.key,
                defaults={
                    "payload": spec.payload,
                    "truth": spec.truth,
                    "is_gold": spec.is_gold,
                    "wanted": GOLD_SLOTS if spec.is_gold else study.workers_per_task,
                },
            )
        study.tasks.exclude(key__in=[s.key for s in specs]).delete()
        _link_made(study, ctx)
        _replace_stage_outputs(study=study, stage="evidence", stored=stored)
        study_transition(study=study, to=Study.State.READY)
        total = max(len(specs), 1)
        Job.objects.filter(pk=job.pk).update(
            state=Job.State.DONE, done=total, total=total, message=f"{len(specs)} tasks ready",
            finished_at=timezone.now(),
        )


def job_fail(*, job_id: int, error: str) -> None:
    """Mark a job failed; a study whose evidence failed goes back to draft with the error."""
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("study").get(pk=job_id)
        job.state = Job.State.FAILED
        job.error = error[:5000]
        job.finished_at = timezone.now()
        job.save(update_fields=["state", "error", "finished_at", "updated_at"])
        if job.name == "evidence" and job.study.state == Study.State.COMPUTING:
            study_transition(study=job.study, to=Study.State.DRAFT, error=f"evidence job failed: {error[:500]}")


def enqueue_job(*, study: Study, name: str, params: dict | None = None) -> Job:
    """Create the job's row and send its Celery task after the commit (run there and then without a broker)."""
    # lazy: breaks the services ↔ workers.tasks cycle
    from workers import tasks

    job = Job.objects.create(study=study, name=name, message="queued", params=params or {})
    task = {"evidence": tasks.compute_study_evidence, "outputs": tasks.compute_study_outputs,
            "aggregate": tasks.aggregate_study, "export": tasks.export_study}.get(name, tasks.run_kind_job)
    transaction.on_commit(lambda: task.delay(job.pk))
    return job


def jobs_active(*, study: Study, name: str):
    """The study's jobs of ``name`` queued or running, last heard of within ``SALIENT_JOB_STALE_SECONDS``
    (a message the broker lost, or a worker killed, does not block a new job: running one twice is harmless)."""
    stale = timezone.now() - dt.timedelta(seconds=settings.SALIENT_JOB_STALE_SECONDS)
    return study.jobs.filter(name=name, state__in=(Job.State.PENDING, Job.State.RUNNING),
                             updated_at__gte=stale).order_by("-created_at")


def job_run(*, job: Job, work: Callable[[Callable[[int, int, str], None]], Mapping[str, Any]]) -> None:
    """Claim ``job``, run ``work(progress)`` and mark the job done with the fields it returns (``message``,
    ``artifact``); a job done already, or running elsewhere, is left alone."""
    if job.state == Job.State.DONE:
        return
    progress = _job_start(job)
    if progress is None:
        return
    fields = dict(work(progress))
    Job.objects.filter(pk=job.pk).update(state=Job.State.DONE, done=1, total=1, finished_at=timezone.now(),
                                         **{**fields, "message": str(fields.get("message", ""))[:255]})


def _link_made(study: Study, ctx) -> None:
    """Record the images ``ctx`` stored as the study's own evidence (what its launch publishes)."""
    made = getattr(ctx.store, "made", ())
    if made:
        study.artifacts.add(*Artifact.objects.filter(sha256__in=made))


def _store_files(files: list[OutputFile]) -> list[tuple[OutputFile, "Artifact"]]:
    return [(f, artifact_store_bytes(data=f.data, ext=f.name.rsplit(".", 1)[-1], kind="output")) for f in files]


def _replace_stage_outputs(*, study: Study, stage: str, stored: list) -> None:
    """Swap a job stage's files for new ones in one transaction (other stages' files stay)."""
    with transaction.atomic():
        StudyOutput.objects.filter(study=study, stage=stage).delete()
        clashes = StudyOutput.objects.filter(study=study, name__in=[f.name for f, _ in stored])
        if clashes.exists():
            raise ApplicationError(f"output names {sorted(clashes.values_list('name', flat=True))} "
                                   f"are already made by another stage")
        StudyOutput.objects.bulk_create(
            [StudyOutput(study=study, name=f.name, artifact=a, title=f.title, stage=stage) for f, a in stored]
        )


def _job_start(job: Job) -> Callable[[int, int, str], None] | None:
    """Claim the job (pending or waiting → running) and return its progress callback.

    None when the job runs elsewhere already: a broker may redeliver a job whose worker is alive; only a
    running job whose heartbeat (last progress) is older than ``SALIENT_JOB_STALE_SECONDS`` is taken over.
    """
    now = timezone.now()
    stale = now - dt.timedelta(seconds=settings.SALIENT_JOB_STALE_SECONDS)
    claimed = Job.objects.filter(pk=job.pk).filter(
        Q(state__in=(Job.State.PENDING, Job.State.WAITING)) | Q(state=Job.State.RUNNING, updated_at__lt=stale)
    ).update(state=Job.State.RUNNING, started_at=now, attempts=F("attempts") + 1, error="", updated_at=now)
    if not claimed:
        log.warning("job %s not run: it is %s elsewhere", job.pk, Job.objects.get(pk=job.pk).state)
        return None

    def progress(done: int, total: int, message: str = "") -> None:
        job_progress(job_id=job.pk, done=done, total=total, message=message)

    return progress


def job_release(*, job_id: int) -> None:
    """Give a running job back to the queue (before a retry of a transient failure)."""
    Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(state=Job.State.PENDING)


def _job_wait(*, job_id: int, deferred: EvidenceDeferred) -> None:
    """The job steps aside while its shards run; if they all finished meanwhile, it is queued again."""
    Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(state=Job.State.WAITING, message=str(deferred)[:255],
                                                                  updated_at=timezone.now())
    if deferred.complete() and Job.objects.filter(pk=job_id, state=Job.State.WAITING).update(state=Job.State.PENDING):
        # lazy: breaks the services ↔ workers.tasks cycle
        from workers.tasks import compute_study_evidence

        transaction.on_commit(lambda: compute_study_evidence.delay(job_id))


def _job_finish_with_files(*, job: Job, stage: str, files: list[OutputFile]) -> None:
    stored = _store_files(files)
    with transaction.atomic():
        _replace_stage_outputs(study=job.study, stage=stage, stored=stored)
        Job.objects.filter(pk=job.pk).update(
            state=Job.State.DONE, done=1, total=1, message=f"{len(stored)} output files", finished_at=timezone.now()
        )


def study_compute_outputs(*, job: Job) -> None:
    """Make the kind's output files from the aggregated labels and store them; safe to run twice."""
    if job.state == Job.State.DONE:
        return
    progress = _job_start(job)
    if progress is None:
        return
    kind = get_task_kind(job.study.kind)
    ctx = study_context(job.study)
    files = kind.build_outputs(ctx, study_labels_table(study=job.study), progress)
    _link_made(job.study, ctx)
    _job_finish_with_files(job=job, stage="outputs", files=files)


def study_start_kind_job(*, study: Study, name: str, params: Mapping[str, Any]) -> Job:
    """Queue one of the kind's own jobs (e.g. SpRAy's un-Hans retrain) with validated parameters.

    Needs the study's evidence (state ready or later) and no running job of the same name.
    """
    kind = get_task_kind(study.kind)
    if name not in kind.jobs:
        known = ", ".join(kind.jobs) or "none"
        raise ApplicationError(f"study kind {study.kind!r} has no job {name!r}; its jobs: {known}")
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        if study.state in (Study.State.DRAFT, Study.State.COMPUTING):
            raise ApplicationError(f"the {name} job needs the study's evidence; the study is {study.state}")
        if study.jobs.filter(name=name, state__in=(Job.State.PENDING, Job.State.RUNNING)).exists():
            raise ApplicationError(f"a {name} job of this study is already queued or running")
        if problem := validation_missing(study_inputs(owner=study.owner, conf=study.settings).get("dataset"),
                                         kind.jobs[name].needs_validation):
            raise ApplicationError(problem)
        return enqueue_job(study=study, name=name, params=dict(params))


def study_start_kind_job_from_data(*, study: Study, name: str, data: Mapping[str, Any]) -> Job:
    """:func:`study_start_kind_job` with raw parameters (the API's JSON), checked by the job's form: a bad value
    is refused naming ``params.<field>``."""
    kind = get_task_kind(study.kind)
    if name not in kind.jobs:
        known = ", ".join(kind.jobs) or "none"
        raise ApplicationError(f"study kind {study.kind!r} has no job {name!r}; its jobs: {known}",
                               extra={"field": "name"})
    form_class = kind.jobs[name].form(study_context(study))
    initial = {k: f.initial() if callable(f.initial) else f.initial for k, f in form_class.base_fields.items()}
    form = form_class(data={k: v for k, v in {**initial, **dict(data)}.items() if v is not None})
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        raise ApplicationError(f"params.{field}: {' '.join(errors)}", extra={"field": f"params.{field}"})
    return study_start_kind_job(study=study, name=name, params=form.cleaned_data)


def study_run_kind_job(*, job: Job) -> None:
    """Run a kind's own job and store its files under the job's name; safe to run twice."""
    if job.state == Job.State.DONE:
        return
    progress = _job_start(job)
    if progress is None:
        return
    ctx = study_context(job.study)
    files = get_task_kind(job.study.kind).jobs[job.name].run(ctx, job.params, progress)
    _link_made(job.study, ctx)
    _job_finish_with_files(job=job, stage=job.name, files=files)

