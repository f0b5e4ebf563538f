"""Who may work on a study: the platform's and the researcher's blocks, and the study's exclusions."""
from __future__ import annotations

from annotation.errors import Forbidden
from annotation.models import BlockedWorker, Study, Worker


def check_may_work(*, worker: Worker, study: Study) -> None:
    if worker.blocked:
        raise Forbidden("this worker is blocked on the platform")
    if BlockedWorker.objects.filter(researcher_id=study.owner_id, worker=worker).exists():
        raise Forbidden("this worker is blocked by the study's researcher")
    if study.excluded_workers.filter(pk=worker.pk).exists():
        raise Forbidden("this worker is excluded from the study (quality checks)")
