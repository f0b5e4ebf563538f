"""Celery tasks: each takes ids, fetches the rows again and calls a service.

Tasks are idempotent (a finished job is skipped; tasks and artifacts are keyed by content), so
``acks_late`` redelivery and retries are harmless.
"""
from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from celery import shared_task
from celery.utils.log import get_task_logger
from django.db import InterfaceError, OperationalError

from annotation.models import Job, Study, Task
from annotation.reports.archive_job import study_run_export
from annotation.services import (
    assignments_expire,
    job_fail,
    job_release,
    recruitment_reconcile_all,
    study_close_recruitment,
    study_compute_evidence,
    study_compute_outputs,
    study_open_recruitment,
    study_run_aggregation,
    study_run_kind_job,
    task_stop_external,
)
from annotation.services.evidence import evidence_shard_run

log = logging.getLogger(__name__)
task_log = get_task_logger(__name__)


class TransientError(Exception):
    """A failure worth retrying (a lost connection, a busy store)."""


def _transient() -> tuple[type[BaseException], ...]:
    return (TransientError, OperationalError, InterfaceError, ConnectionError, TimeoutError)


def _run_job(task, job_id: int, service: Callable) -> None:
    """Run ``service(job=...)``; retry transient errors, record any other failure on the job."""

    job = Job.objects.select_related("study").filter(pk=job_id).first()
    if job is None:
        log.warning("job %s no longer exists", job_id)
        return
    try:
        service(job=job)
    except _transient() as exc:
        if task.request.retries >= task.max_retries:
            job_fail(job_id=job_id, error=f"gave up after {task.max_retries} retries: {exc}")
        else:
            job_release(job_id=job_id)
        raise
    except Exception as exc:
        job_fail(job_id=job_id, error="".join(traceback.format_exception_only(exc)).strip())
        if task.request.is_eager:
            raise
        log.exception("job %s failed", job_id)


JOB_OPTIONS = dict(bind=True, acks_late=True, autoretry_for=_transient(), retry_backoff=5, retry_backoff_max=120,
                   max_retries=3)


@shared_task(name="workers.tasks.compute_study_evidence", **JOB_OPTIONS)
def compute_study_evidence(self, job_id: int) -> None:
    """Compute a study's evidence and create its tasks."""

    _run_job(self, job_id, study_compute_evidence)


@shared_task(name="workers.tasks.compute_evidence_shard", **JOB_OPTIONS)
def compute_evidence_shard(self, job_id: int, spec: dict, index: int, n_shards: int) -> None:
    """Compute one shard of an evidence pass; the shard that completes the pass queues its job again."""

    try:
        done, complete = evidence_shard_run(job_id=job_id, spec=spec, index=index, n_shards=n_shards)
        task_log.info("evidence shard %s of job %s: %s", index, job_id, done)
    except _transient():
        raise
    except Exception as exc:
        job_fail(job_id=job_id, error="".join(traceback.format_exception_only(exc)).strip())
        log.exception("evidence shard %s of job %s failed", index, job_id)
        return
    if complete:
        compute_study_evidence.delay(job_id)


@shared_task(name="workers.tasks.compute_study_outputs", **JOB_OPTIONS)
def compute_study_outputs(self, job_id: int) -> None:
    """Make a study's output files (mask dataset, accuracy tables, plots) after aggregation."""

    _run_job(self, job_id, study_compute_outputs)


@shared_task(name="workers.tasks.aggregate_study", **JOB_OPTIONS)
def aggregate_study(self, job_id: int) -> None:
    """Aggregate a study's answers: majority vote, Dawid-Skene, agreement, one label per task."""

    _run_job(self, job_id, study_run_aggregation)


@shared_task(name="workers.tasks.export_study", **JOB_OPTIONS)
def export_study(self, job_id: int) -> None:
    """Make a study's export archive in the artifact store."""

    _run_job(self, job_id, study_run_export)


@shared_task(name="workers.tasks.run_kind_job", **JOB_OPTIONS)
def run_kind_job(self, job_id: int) -> None:
    """Run one of a study kind's own jobs (e.g. SpRAy's un-Hans retrain) and store its files."""

    _run_job(self, job_id, study_run_kind_job)


@shared_task(name="workers.tasks.expire_assignments")
def expire_assignments() -> int:
    """Periodic: expire overdue assignments so their tasks are offered again."""

    return assignments_expire()


# --- crowd backends (recruiters) -------------------------------------------------------------

@shared_task(name="workers.tasks.open_recruitment", **JOB_OPTIONS)
def open_recruitment(self, job_id: int) -> None:
    """Open a launched study's recruitment (MTurk: create its HITs); idempotent per task."""

    job = Job.objects.select_related("study").filter(pk=job_id).first()
    if job is None:
        return
    try:
        study_open_recruitment(job=job)
    except _transient():
        if self.request.retries >= self.max_retries:
            job_fail(job_id=job_id, error=f"gave up after {self.max_retries} retries")
        raise
    except Exception as exc:  # shown on the dashboard; the study stays live
        job_fail(job_id=job_id, error="".join(traceback.format_exception_only(exc)).strip())
        log.exception("recruitment job %s failed", job_id)


@shared_task(name="workers.tasks.close_recruitment", acks_late=True)
def close_recruitment(study_id: int) -> None:
    """Close a study's recruitment on its crowd site (MTurk: expire its HITs)."""

    study = Study.objects.filter(pk=study_id).first()
    if study is not None:
        study_close_recruitment(study=study)


@shared_task(name="workers.tasks.stop_external_task", acks_late=True)
def stop_external_task(task_id: int) -> None:
    """Early stopping settled a task's label: stop offering it on the crowd site."""

    task = Task.objects.select_related("study").filter(pk=task_id).first()
    if task is not None:
        task_stop_external(task=task)


@shared_task(name="workers.tasks.reconcile_crowd_backends")
def reconcile_crowd_backends() -> int:
    """Periodic: approve on the crowd sites what the platform accepted, record what they say."""

    return recruitment_reconcile_all()
