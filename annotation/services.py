"""Writes of the annotation app: every change to studies, tasks, assignments and answers goes here.

Services take keyword arguments, check the current state first and raise
:class:`annotation.errors.ApplicationError` subclasses; views stay thin. Counters that guard
invariants are changed with conditional UPDATEs, which the database serialises.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation import selectors
from annotation.errors import ApplicationError, Conflict, Forbidden
from annotation.models import Answer, Assignment, Invitation, Job, Study, StudyResult, Task, Worker
from annotation.states import study_transition
from annotation.task_kinds import get_task_kind
from annotation.tokens import assignment_token_check

log = logging.getLogger(__name__)
A = Assignment.State
RESEARCHERS = "researchers"


# --- people -----------------------------------------------------------------------------------

def researcher_create(*, username: str, password: str, email: str = ""):
    """A user in the ``researchers`` group (researchers may create studies)."""
    User = get_user_model()
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        if created or not user.has_usable_password():
            user.set_password(password)
            user.save()
        group, _ = Group.objects.get_or_create(name=RESEARCHERS)
        user.groups.add(group)
    return user


def worker_signup(*, username: str, password: str, invitation: Invitation | None = None) -> Worker:
    """Create an internal worker account; an invitation is used up by it."""
    User = get_user_model()
    with transaction.atomic():
        if User.objects.filter(username__iexact=username).exists():
            raise Conflict(f"the user name {username!r} is taken")
        user = User.objects.create_user(username=username, password=password)
        worker = Worker.objects.create(user=user, backend=Worker.Backend.INTERNAL)
        if invitation is not None:
            used = Invitation.objects.filter(pk=invitation.pk, used_by__isnull=True).update(used_by=worker)
            if not used:
                raise Conflict("this invitation has already been used")
    return worker


def invitation_create(*, researcher, note: str = "", study: Study | None = None) -> Invitation:
    if study is not None and study.owner_id != researcher.pk:
        raise Forbidden("you can only invite workers to your own studies")
    return Invitation.objects.create(created_by=researcher, note=note, study=study)


# --- studies ----------------------------------------------------------------------------------

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
) -> Study:
    from django.conf import settings as django_settings

    task_kind = get_task_kind(kind)
    if Study.objects.filter(owner=owner, name=name).exists():
        raise Conflict(f"you already have a study named {name!r}")
    if workers_per_task < 1:
        raise ApplicationError("workers per task must be at least 1")
    return Study.objects.create(
        owner=owner,
        name=name,
        kind=kind,
        settings={**task_kind.default_settings(), **(settings or {})},
        workers_per_task=workers_per_task,
        reward_cents=reward_cents,
        assignment_seconds=assignment_seconds or django_settings.SALIENT_ASSIGNMENT_SECONDS,
        backend=backend,
    )


def study_start_computing(*, study: Study) -> Job:
    """Move the study to ``computing`` and queue its evidence job (after the commit)."""
    from workers.tasks import compute_study_evidence

    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        study_transition(study=study, to=Study.State.COMPUTING)
        job = Job.objects.create(study=study, name="evidence", message="queued")
        transaction.on_commit(lambda: compute_study_evidence.delay(job.pk))
    return job


def job_progress(*, job_id: int, done: int, total: int, message: str = "") -> None:
    Job.objects.filter(pk=job_id).update(done=min(done, total), total=total, message=message[:255])


def study_compute_evidence(*, job: Job) -> None:
    """Run the study kind's evidence step and create its tasks; safe to run twice."""
    if job.state == Job.State.DONE:
        return
    study = job.study
    if study.state != Study.State.COMPUTING:
        log.warning("evidence job %s skipped: study %s is %s", job.pk, study.pk, study.state)
        return
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1, error=""
    )
    kind = get_task_kind(study.kind)

    def progress(done: int, total: int, message: str = "") -> None:
        job_progress(job_id=job.pk, done=done, total=total, message=message)

    specs = list(kind.build_items(study, progress))
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
                    "wanted": study.workers_per_task,
                },
            )
        study.tasks.exclude(key__in=[s.key for s in specs]).delete()
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


def study_launch(*, study: Study) -> Study:
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        if study.state == Study.State.READY and not study.tasks.exists():
            raise ApplicationError(f"study {study.name!r} has no tasks to launch")
        return study_transition(study=study, to=Study.State.LIVE)


def study_close(*, study: Study) -> Study:
    """Stop handing out tasks; open assignments expire and their late submissions are refused."""
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        study_transition(study=study, to=Study.State.CLOSED)
    for pk in Assignment.objects.filter(task__study=study, state=A.ASSIGNED).values_list("pk", flat=True):
        _release_slot(assignment_id=pk, to=A.EXPIRED)
    return study


def study_aggregate(*, study: Study) -> Study:
    """Aggregate the accepted answers into one result per task and move to ``aggregated``."""
    kind = get_task_kind(study.kind)
    answers = selectors.study_label_answers(study=study, label_field=kind.label_field)
    table = kind.aggregate(answers, {**study.settings, "workers_per_task": study.workers_per_task})
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        study_transition(study=study, to=Study.State.AGGREGATED)
        StudyResult.objects.filter(study=study).delete()
        count_cols = [c for c in table.columns if c.startswith("count_")]
        results = []
        for task in study.tasks.all():
            if task.pk in table.index:
                row = table.loc[task.pk]
                label = row["label"]
                results.append(StudyResult(
                    study=study, task=task, label="" if label is None else str(label), tie=bool(row["tie"]),
                    complete=bool(row["complete"]), n_answers=int(row["n_answers"]),
                    counts={c.removeprefix("count_"): int(row[c]) for c in count_cols},
                ))
            else:
                results.append(StudyResult(study=study, task=task, complete=False, n_answers=0, counts={}))
        StudyResult.objects.bulk_create(results)
    return study


# --- assignments ------------------------------------------------------------------------------

def _release_slot(*, assignment_id: int, to: str, frm: tuple[str, ...] = (A.ASSIGNED,)) -> bool:
    """Move an assignment out of a slot-holding state and give the task its slot back, once."""
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().filter(pk=assignment_id, state__in=frm).first()
        if assignment is None:
            return False
        was_approved = assignment.state == A.APPROVED
        assignment.state = to
        assignment.decided_at = timezone.now()
        assignment.save(update_fields=["state", "decided_at", "updated_at"])
        changes = {"filled": F("filled") - 1}
        if was_approved:
            changes["approved"] = F("approved") - 1
        Task.objects.filter(pk=assignment.task_id).update(**changes)
    return True


def assignments_expire(*, now: dt.datetime | None = None) -> int:
    """Expire every overdue assignment; their tasks are offered again. Returns how many."""
    now = now or timezone.now()
    overdue = Assignment.objects.filter(state=A.ASSIGNED, expires_at__lt=now).values_list("pk", flat=True)
    return sum(_release_slot(assignment_id=pk, to=A.EXPIRED) for pk in list(overdue))


def assignment_claim_next(*, worker: Worker) -> Assignment | None:
    """The worker's open assignment, or a new one on a task they may do; None when none is left."""
    if worker.blocked:
        return None
    assignments_expire()
    current = selectors.assignment_open_for(worker=worker)
    if current is not None:
        return current
    for _ in range(3):
        candidates = list(selectors.tasks_open_for(worker=worker).select_related("study")[:25])
        if not candidates:
            return None
        for task in candidates:
            try:
                with transaction.atomic():
                    took = Task.objects.filter(
                        pk=task.pk, filled__lt=F("wanted"), study__state=Study.State.LIVE
                    ).update(filled=F("filled") + 1)
                    if not took:
                        continue
                    return Assignment.objects.create(
                        task=task,
                        worker=worker,
                        expires_at=timezone.now() + dt.timedelta(seconds=task.study.assignment_seconds),
                    )
            except IntegrityError:
                # The same worker claimed this task in a parallel request; the slot is rolled back.
                current = selectors.assignment_open_for(worker=worker)
                if current is not None:
                    return current
    return None


def assignment_mark_shown(*, assignment: Assignment) -> None:
    if assignment.shown_at is None:
        now = timezone.now()
        Assignment.objects.filter(pk=assignment.pk, shown_at__isnull=True).update(shown_at=now)
        assignment.shown_at = now


def assignment_submit(
    *, assignment_id: int, worker: Worker, payload: Mapping[str, Any], token: str | None
) -> Answer:
    """Validate and store one answer; a replay, someone else's assignment or a bad token is refused."""
    expired = False
    with transaction.atomic():
        assignment = (
            Assignment.objects.select_for_update().select_related("task__study").filter(pk=assignment_id).first()
        )
        if assignment is None or assignment.worker_id != worker.pk:
            raise selectors.NotFound("no such assignment of yours")
        assignment_token_check(token=token, assignment=assignment)
        if assignment.state != A.ASSIGNED:
            raise Conflict(f"this assignment is already {assignment.state}; an answer is taken only once")
        study = assignment.task.study
        if study.state != Study.State.LIVE:
            raise Conflict(f"study {study.name!r} is {study.state} and takes no more answers")
        if assignment.expires_at < timezone.now():
            expired = True
        else:
            kind = get_task_kind(study.kind)
            cleaned = kind.validate_answer(payload, assignment.task)
            now = timezone.now()
            try:
                with transaction.atomic():
                    answer = Answer.objects.create(
                        assignment=assignment, task=assignment.task, worker=worker, payload=cleaned,
                        shown_at=assignment.shown_at or assignment.created_at, submitted_at=now,
                    )
            except IntegrityError as exc:
                raise Conflict("this assignment already has an answer") from exc
            assignment.state = A.SUBMITTED
            assignment.submitted_at = now
            assignment.save(update_fields=["state", "submitted_at", "updated_at"])
            if study.auto_approve:
                _approve(assignment)
            return answer
    if expired:
        _release_slot(assignment_id=assignment_id, to=A.EXPIRED)
        raise Conflict("this assignment expired before it was submitted; open the next task")
    raise AssertionError("unreachable")


def _approve(assignment: Assignment) -> None:
    took = Task.objects.filter(pk=assignment.task_id, approved__lt=F("wanted")).update(approved=F("approved") + 1)
    if not took:
        raise Conflict("this task already has all the approved answers it wants")
    assignment.state = A.APPROVED
    assignment.decided_at = timezone.now()
    assignment.save(update_fields=["state", "decided_at", "updated_at"])


def assignment_approve(*, assignment: Assignment) -> Assignment:
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if assignment.state != A.SUBMITTED:
            raise Conflict(f"only submitted assignments can be approved; this one is {assignment.state}")
        _approve(assignment)
    return assignment


def assignment_reject(*, assignment: Assignment) -> bool:
    """Reject a submitted or approved answer: it stays stored but no longer counts."""
    if not _release_slot(assignment_id=assignment.pk, to=A.REJECTED, frm=(A.SUBMITTED, A.APPROVED)):
        raise Conflict(f"only submitted or approved assignments can be rejected; this one is {assignment.state}")
    return True


def assignment_return(*, assignment_id: int, worker: Worker, token: str | None) -> None:
    assignment = Assignment.objects.filter(pk=assignment_id, worker=worker).first()
    if assignment is None:
        raise selectors.NotFound("no such assignment of yours")
    assignment_token_check(token=token, assignment=assignment)
    if not _release_slot(assignment_id=assignment_id, to=A.RETURNED):
        raise Conflict(f"this assignment is {assignment.state} and cannot be returned")
