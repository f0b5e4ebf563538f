"""Celery tasks: each takes ids, fetches the rows again and calls a service.

Tasks are idempotent (a finished job is skipped; tasks and artifacts are keyed by content), so
``acks_late`` redelivery and retries are harmless.
"""
from __future__ import annotations

import logging
import traceback

from celery import shared_task

log = logging.getLogger(__name__)


class TransientError(Exception):
    """A failure worth retrying (a lost connection, a busy store)."""


def _transient() -> tuple[type[BaseException], ...]:
    from django.db import InterfaceError, OperationalError

    return (TransientError, OperationalError, InterfaceError, ConnectionError, TimeoutError)


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=_transient(),
    retry_backoff=5,
    retry_backoff_max=120,
    max_retries=3,
    name="workers.tasks.compute_study_evidence",
)
def compute_study_evidence(self, job_id: int) -> None:
    """Compute a study's evidence and create its tasks."""
    from annotation.models import Job
    from annotation.services import job_fail, study_compute_evidence

    job = Job.objects.select_related("study").filter(pk=job_id).first()
    if job is None:
        log.warning("evidence job %s no longer exists", job_id)
        return
    try:
        study_compute_evidence(job=job)
    except _transient() as exc:
        if self.request.retries >= self.max_retries:
            job_fail(job_id=job_id, error=f"gave up after {self.max_retries} retries: {exc}")
        raise
    except Exception as exc:
        job_fail(job_id=job_id, error="".join(traceback.format_exception_only(exc)).strip())
        if self.request.is_eager:
            raise
        log.exception("evidence job %s failed", job_id)


@shared_task(name="workers.tasks.expire_assignments")
def expire_assignments() -> int:
    """Periodic: expire overdue assignments so their tasks are offered again."""
    from annotation.services import assignments_expire

    return assignments_expire()
