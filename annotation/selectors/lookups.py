"""The rows a request names by id (an assignment, task, study, worker, job, output, invitation, artifact or
API token), each fetched with what its page shows and limited to whoever may see it; None when there is none."""
from __future__ import annotations

from django.db.models import QuerySet

from annotation.api.models import ApiToken
from annotation.models import Answer, Artifact, Assignment, Bonus, Invitation, Job, Study, StudyOutput, Task, Worker


def assignment_get(*, pk: int, owner=None, worker: Worker | None = None) -> Assignment | None:
    """Assignment ``pk`` with its task and study (and worker); of ``owner``'s studies or of ``worker`` when given."""
    rows = Assignment.objects.select_related("task__study", "worker").filter(pk=pk)
    if owner is not None:
        rows = rows.filter(task__study__owner=owner)
    if worker is not None:
        rows = rows.filter(worker=worker)
    return rows.first()


def assignment_with_answer(*, pk: int) -> Assignment:
    return Assignment.objects.select_related("task__study", "worker", "answer").get(pk=pk)


def task_get(*, pk: int, owner=None, backend: str = "") -> Task | None:
    """Task ``pk`` with its study; of ``owner``'s studies, or of a study on crowd ``backend``, when given."""
    rows = Task.objects.select_related("study").filter(pk=pk)
    if owner is not None:
        rows = rows.filter(study__owner=owner)
    if backend:
        rows = rows.filter(study__backend=backend)
    return rows.first()


def study_on_backend(*, pk: int, backend: str) -> Study | None:
    return Study.objects.filter(pk=pk, backend=backend).first()


def worker_answered(*, worker: Worker, study: Study | None = None) -> int:
    """How many answers ``worker`` gave (in ``study``, when given)."""
    rows = Answer.objects.filter(worker=worker)
    return rows.filter(task__study=study).count() if study is not None else rows.count()


def external_worker_get(*, backend: str, external_id: str) -> Worker | None:
    """The worker a crowd site knows by ``external_id``, if they answered before."""
    return Worker.objects.filter(backend=backend, external_id=external_id).first()


def worker_of_owner(*, pk: int, owner) -> Worker | None:
    """Worker ``pk`` if they answered in one of ``owner``'s studies."""
    return Worker.objects.filter(pk=pk, answers__task__study__owner=owner).distinct().first()


def study_bonuses(*, study: Study, limit: int = 200) -> QuerySet[Bonus]:
    return Bonus.objects.filter(assignment__task__study=study).select_related("paid_by", "assignment__worker")[:limit]


def study_outputs(*, study: Study) -> QuerySet[StudyOutput]:
    return study.outputs.select_related("artifact")


def study_output(*, study: Study, name: str) -> StudyOutput | None:
    return study_outputs(study=study).filter(name=name).first()


def study_job(*, study: Study, pk: int, with_file: bool = False) -> Job | None:
    """Job ``pk`` of ``study``; ``with_file``: only if it made a file (then with its artifact)."""
    if with_file:
        return study.jobs.filter(pk=pk, artifact__isnull=False).select_related("artifact").first()
    return study.jobs.filter(pk=pk).first()


def study_kind_jobs(*, study: Study, limit: int = 10) -> QuerySet[Job]:
    """The study's latest jobs other than evidence and outputs (the kind's jobs, exports)."""
    return study.jobs.exclude(name__in=("evidence", "outputs")).order_by("-created_at")[:limit]


def invitation_open(*, token) -> Invitation | None:
    return Invitation.objects.filter(token=token, used_by__isnull=True).first()


def artifact_by_name(*, sha: str, ext: str) -> Artifact | None:
    return Artifact.objects.filter(sha256=sha, ext=ext).first()


def api_tokens_of(*, user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def assignments_of_answers(*, answers: QuerySet[Answer], states) -> QuerySet[Assignment]:
    """The assignments of ``answers`` in one of ``states``, oldest first."""
    return Assignment.objects.filter(pk__in=answers.filter(assignment__state__in=states)
                                     .values("assignment_id")).order_by("id")
