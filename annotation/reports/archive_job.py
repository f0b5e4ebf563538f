"""The export job's work: every export file and the study's outputs zipped into one archive in the artifact store.

Queued by :func:`annotation.services.export_jobs.study_start_export`; run by the ``export_study`` Celery task.
"""
from __future__ import annotations

from analysis.exports import archive_bytes
from annotation.artifacts import artifact_store_bytes
from annotation.models import Job
from annotation.reports.export_files import study_export_files
from annotation.services.export_jobs import ARCHIVE
from annotation.services.jobs import job_run


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
