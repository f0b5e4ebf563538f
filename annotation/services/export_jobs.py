"""Export jobs: a study's archive made by a Celery job into the artifact store, downloaded when it is done.

The archive holds every export file and the study's outputs (:func:`annotation.exports.study_export_files`);
with many answers and large output files it outgrows a web request. Single CSV/JSON files stay direct downloads.
"""
from __future__ import annotations

from django.db import transaction

from analysis.exports import archive_bytes
from annotation.artifacts import artifact_store_bytes
from annotation.errors import ApplicationError
from annotation.exports import study_export_files
from annotation.models import Job, Study
from annotation.services.jobs import enqueue_job, job_run, jobs_active

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


def study_run_export(*, job: Job) -> None:
    """The export job: build the file, store it as an artifact and hang it on the job; safe to run twice."""
    def work(progress):
        progress(0, 3, "collecting the export files")
        files = study_export_files(study=job.study, with_outputs=True)
        progress(1, 3, f"zipping {len(files)} files")
        data = archive_bytes({f"study{job.study_id}/{name}": content for name, content in files.items()})
        progress(2, 3, f"storing {len(data):,} bytes")
        artifact = artifact_store_bytes(data=data, ext="zip", kind="export")
        return {"message": f"{ARCHIVE} ready: {len(files)} files, {len(data):,} bytes", "artifact": artifact}

    job_run(job=job, work=work)


def study_export_latest(*, study: Study, file: str = ARCHIVE) -> Job | None:
    """The newest export job of ``file`` that finished with its file stored, or None."""
    return (study.jobs.filter(name="export", state=Job.State.DONE, params__file=file, artifact__isnull=False)
            .select_related("artifact").order_by("-finished_at", "-pk").first())
