"""Export jobs: a study's archive made by a Celery job into the artifact store, downloaded when it is done.

The archive holds every export file and the study's outputs; the job's work is
:func:`annotation.reports.archive_job.study_run_export` (a layer above the services);
with many answers and large output files it outgrows a web request. Single CSV/JSON files stay direct downloads.
"""
from __future__ import annotations

from django.db import transaction

from annotation.errors import ApplicationError
from annotation.models import Job, Study
from annotation.services.jobs import enqueue_job, jobs_active

ARCHIVE = "archive.zip"
#: The files an export job makes.
JOB_EXPORTS = (ARCHIVE,)


def study_start_export(*, study: Study, file: str = ARCHIVE) -> Job:
    """Queue the job that makes ``file``; one already queued or running for it is returned instead."""
    if file not in JOB_EXPORTS:
        raise ApplicationError(f"no export job makes {file!r}; export jobs make {', '.join(JOB_EXPORTS)}",
                               extra={"field": "file"})
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        active = jobs_active(study=study, name="export").filter(params__file=file).first()
        return active or enqueue_job(study=study, name="export", params={"file": file})

