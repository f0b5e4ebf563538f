"""Assignments: claiming a task, submitting, approving, rejecting, returning and expiring."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation import selectors
from annotation.errors import Conflict, Forbidden
from annotation.models import Answer, Assignment, ExternalSession, Study, Task, Worker
from annotation.recruiters import recruiter_for
from annotation.services.consent import consent_record
from annotation.services.intake import answer_store_approved, assignment_locked, one_statement_writes
from annotation.services.people import external_worker
from annotation.services.quality import early_stop_check, gold_check, stopped_task_recheck, time_flag
from annotation.services.slots import release_slot
from annotation.task_kinds import get_task_kind
from annotation.tokens import assignment_token_check

log = logging.getLogger(__name__)

A = Assignment.State

def assignments_expire(*, now: dt.datetime | None = None) -> int:
    """Expire every overdue assignment; their tasks are offered again. Returns how many."""
    now = now or timezone.now()
    overdue = Assignment.objects.filter(state=A.ASSIGNED, expires_at__lt=now).values_list("pk", flat=True)
    return sum(release_slot(assignment_id=pk, to=A.EXPIRED) for pk in list(overdue))


def assignment_claim_next(*, worker: Worker, study: Study | None = None) -> Assignment | None:
    """The worker's open assignment, or a new one on a task they may do; None when none is left.

    ``study`` limits the search to one study (a crowd-site participant). Gold tasks are mixed in at
    the study's gold rate: one is due while the worker's gold share is below ``gold_rate``.
    """
    if worker.blocked:
        return None
    assignments_expire()
    current = selectors.assignment_open_for(worker=worker)
    if current is not None:
        return current if study is None or current.task.study_id == study.pk else None
    for _ in range(3):
        candidates = _claim_candidates(worker=worker, study=study)
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


def _claim_candidates(*, worker: Worker, study: Study | None) -> list[Task]:
    """Up to 25 tasks of the first study with work for the worker; gold first when one is due."""
    open_tasks = selectors.tasks_open_for(worker=worker, study=study).select_related("study")
    first = list(open_tasks.filter(is_gold=False)[:25])  # in study order: the first rows are the target study's
    if not first:
        return []
    in_study = open_tasks.filter(study_id=first[0].study_id)
    normal = [task for task in first if task.study_id == first[0].study_id]
    rate = normal[0].study.gold_rate
    if rate > 0:
        taken, gold_taken = selectors.worker_study_counts(worker=worker, study=normal[0].study)
        if gold_taken < rate * (taken + 1):
            return list(in_study.filter(is_gold=True)[:25]) + normal
    return normal


def assignment_mark_shown(*, assignment: Assignment) -> None:
    if assignment.shown_at is None:
        now = timezone.now()
        Assignment.objects.filter(pk=assignment.pk, shown_at__isnull=True).update(shown_at=now)
        assignment.shown_at = now


def assignment_submit(
    *, assignment_id: int, worker: Worker | None, payload: Mapping[str, Any], token: str | None,
    purpose: str | None = None,
) -> Answer:
    """Validate and store one answer; a replay, someone else's assignment or a bad token is refused.

    ``worker`` None: the assignment's own worker, as its signed ``token`` proves (a crowd-site page, whose
    tokens have the ``purpose`` ``ext``). The returned answer's ``assignment`` is the stored one, its task,
    study and worker loaded. One locked read (``services.intake``: no study-wide lock); then, on PostgreSQL, one
    statement that stores and approves a counted answer (``intake.answer_store_approved``), else one insert and
    two updates.
    """
    expired = False
    with transaction.atomic():
        assignment, conf = assignment_locked(assignment_id)
        if assignment is None or (worker is not None and assignment.worker_id != worker.pk):
            raise selectors.NotFound("no such assignment of yours")
        assignment_token_check(token=token, assignment=assignment, purpose=purpose)
        if assignment.state != A.ASSIGNED:
            raise Conflict(f"this assignment is already {assignment.state}; an answer is taken only once")
        study = assignment.task.study
        if study.state != Study.State.LIVE:
            raise Conflict(f"study {study.name!r} is {study.state} and takes no more answers")
        if selectors.consent_needed(worker=assignment.worker, study=study):
            raise Forbidden(f"agree to the information and consent text of study {study.name!r} first")
        if assignment.expires_at < timezone.now():
            expired = True
        else:
            cleaned = get_task_kind(study.kind).validate_answer(payload, conf)
            return _record_answer(assignment=assignment, worker=assignment.worker, study=study, cleaned=cleaned,
                                  shown=assignment.shown_at or assignment.created_at)
    if expired:
        release_slot(assignment_id=assignment_id, to=A.EXPIRED)
        raise Conflict("this assignment expired before it was submitted; open the next task")
    raise AssertionError("unreachable")


def _record_answer(*, assignment: Assignment, worker: Worker, study: Study, cleaned: dict, shown) -> Answer:
    """Store the validated answer of an assignment holding a slot; flag, approve and run the quality checks.

    Runs inside the caller's transaction, which a refusal (Conflict) rolls back whole: no savepoint needed.
    """
    now = timezone.now()
    flag = time_flag(study, (now - shown).total_seconds())
    if not flag and study.auto_approve and one_statement_writes():
        answer = answer_store_approved(assignment=assignment, worker=worker, cleaned=cleaned, shown=shown, now=now)
        _quality_checks(assignment=assignment, study=study, worker=worker, counted=True)
        return answer
    try:
        answer = Answer.objects.create(
            assignment=assignment, task=assignment.task, worker=worker, payload=cleaned,
            shown_at=shown, submitted_at=now, flag=flag,
        )
    except IntegrityError as exc:
        raise Conflict("this assignment already has an answer") from exc
    assignment.state = A.SUBMITTED
    assignment.submitted_at = now
    fields = ["state", "submitted_at", "updated_at"]
    if not flag and study.auto_approve:
        _take_approval(task_id=assignment.task_id)  # submitted and approved in one update
        assignment.state = A.APPROVED
        assignment.decided_at = now
        fields.append("decided_at")
    assignment.save(update_fields=fields)
    if flag:
        # Kept but not counted: the slot goes back so that someone else answers the task.
        release_slot(assignment_id=assignment.pk, to=A.REJECTED, frm=(A.SUBMITTED,))
        assignment.state = A.REJECTED
    _quality_checks(assignment=assignment, study=study, worker=worker, counted=not flag)
    return answer


def _quality_checks(*, assignment: Assignment, study: Study, worker: Worker, counted: bool) -> None:
    """Gold accuracy after a gold answer; early stopping after a counted one."""
    if assignment.task.is_gold:
        gold_check(study=study, worker=worker)
    elif counted and study.early_stopping:
        early_stop_check(task_id=assignment.task_id)


def _take_approval(*, task_id: int) -> None:
    if not Task.objects.filter(pk=task_id, approved__lt=F("wanted")).update(approved=F("approved") + 1):
        raise Conflict("this task already has all the approved answers it wants")


def _approve(assignment: Assignment) -> None:
    _take_approval(task_id=assignment.task_id)
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
    if not release_slot(assignment_id=assignment.pk, to=A.REJECTED, frm=(A.SUBMITTED, A.APPROVED)):
        raise Conflict(f"only submitted or approved assignments can be rejected; this one is {assignment.state}")
    stopped_task_recheck(task_id=assignment.task_id)
    return True


def assignment_return(*, assignment_id: int, worker: Worker, token: str | None) -> None:
    assignment = Assignment.objects.filter(pk=assignment_id, worker=worker).first()
    if assignment is None:
        raise selectors.NotFound("no such assignment of yours")
    assignment_token_check(token=token, assignment=assignment)
    if not release_slot(assignment_id=assignment_id, to=A.RETURNED):
        raise Conflict(f"this assignment is {assignment.state} and cannot be returned")



def _unconfirmed(assignments):
    """The unconfirmed claims among ``assignments``: kept, never counted, holding no slot."""
    return assignments.filter(state=A.REJECTED, answer__flag=Answer.Flag.UNCONFIRMED)


def mturk_pair_check(*, task: Task, assignment_id: str, worker_id: str, confirmed: bool = False) -> None:
    """Refuse an (assignment id, worker id) pair that would touch another pair's assignment.

    The pair is the identity of an MTurk assignment: an assignment id already stored for another worker,
    or a worker who already has an assignment of this HIT under another id, is refused (409). A worker's
    unconfirmed claim (anyone can post one under a made-up assignment id) never blocks a pair MTurk
    confirms (``confirmed``), nor the entry that may lead to one.
    """
    taken = Assignment.objects.filter(task__study_id=task.study_id, external_id=assignment_id).select_related("worker")
    for other in taken:
        if other.worker.external_id != worker_id:
            raise Conflict("this assignment id belongs to another worker")
        raise Conflict("this assignment was already answered; an answer is taken only once")
    mine = Assignment.objects.filter(task=task, worker__backend=task.study.backend, worker__external_id=worker_id)
    if confirmed:
        mine = mine.exclude(pk__in=_unconfirmed(mine).values("pk"))
    if mine.exists():
        raise Conflict(f"worker {worker_id} already has an assignment of this HIT under another assignment id")


def mturk_entry_check(*, task: Task, assignment_id: str, worker_id: str, confirmed: bool = True) -> None:
    """May this pair start ``task``'s HIT? Refuses (409/403) as the submit would; stores nothing.

    The per-worker task cap applies to MTurk workers as to every backend. ``confirmed=False`` (an answer
    MTurk did not confirm): a stored unconfirmed claim of the worker blocks it too.
    """
    study = task.study
    if study.state != Study.State.LIVE:
        raise Conflict(f"study {study.name!r} is {study.state} and takes no answers")
    mturk_pair_check(task=task, assignment_id=assignment_id, worker_id=worker_id, confirmed=confirmed)
    worker = Worker.objects.filter(backend=study.backend, external_id=worker_id).first()
    if worker is not None:
        selectors.check_may_work(worker=worker, study=study)
        if selectors.worker_had_exclusion_sibling(worker=worker, task=task):
            raise Conflict("you already worked on another version of this item in this study; please return it")
        if study.pk in selectors.worker_capped_studies(worker=worker):
            raise Conflict(f"you have answered the {study.max_tasks_per_worker} tasks a worker may do in this "
                           "study; please return this HIT")
    if task.filled >= task.wanted:
        raise Conflict("this task has all the answers it wants; please return it")


def mturk_answer_submit(*, task: Task, claim: Mapping[str, Any], payload: Mapping[str, Any],
                        consent: bool = False) -> Assignment:
    """Store the answer of an MTurk worker's signed claim; it counts only once MTurk confirms the pair.

    Nothing is stored before this call (no worker row, no slot held at entry). MTurk is asked first
    (``GetAssignment``): a confirmed answer takes a slot and follows the study's rules like any other; an
    unconfirmed one (MTurk denies it, does not list it yet, or cannot be asked) is kept with the flag
    ``unconfirmed``, holds no slot and is never counted until reconciliation confirms it.
    """
    task = Task.objects.select_related("study").get(pk=task.pk)
    study = task.study
    cleaned = get_task_kind(study.kind).validate_answer(payload, selectors.study_conf(study=study))
    assignment_id, worker_id = claim["a"], claim["w"]
    mturk_entry_check(task=task, assignment_id=assignment_id, worker_id=worker_id)  # before asking MTurk
    counted = recruiter_for(study).confirm_assignment(task, assignment_id, worker_id) is True
    shown = dt.datetime.fromtimestamp(claim["at"], tz=dt.timezone.utc)
    now = timezone.now()
    with transaction.atomic():
        mturk_entry_check(task=Task.objects.select_for_update().select_related("study").get(pk=task.pk),
                          assignment_id=assignment_id, worker_id=worker_id, confirmed=counted)
        worker = external_worker(backend=study.backend, external_id=worker_id)
        if selectors.consent_needed(worker=worker, study=study):  # the page asks with the answer (no worker before)
            if not consent:
                raise Forbidden(f"agree to the information and consent text of study {study.name!r} first")
            consent_record(worker=worker, study=study, agreed=True)
        if counted:  # MTurk gives this HIT one assignment per worker: a claim under another id was made up
            for forged in _unconfirmed(Assignment.objects.filter(task=task, worker=worker)):
                log.warning("MTurk confirmed assignment %s of worker %s on HIT %s: the unconfirmed claim %s "
                            "for the same worker and HIT is dropped", assignment_id, worker_id, task.external_id,
                            forged.external_id)
                ExternalSession.objects.filter(assignment=forged).delete()
                forged.delete()
        if counted and not Task.objects.filter(pk=task.pk, filled__lt=F("wanted")).update(filled=F("filled") + 1):
            raise Conflict("this task has all the answers it wants; please return the HIT")
        try:
            with transaction.atomic():
                assignment = Assignment.objects.create(
                    task=task, worker=worker, external_id=assignment_id, shown_at=shown,
                    expires_at=shown + dt.timedelta(seconds=study.assignment_seconds),
                    state=A.ASSIGNED if counted else A.REJECTED, decided_at=None if counted else now)
                ExternalSession.objects.create(study=study, worker=worker, backend=study.backend,
                                               session_id=assignment_id, external_study_id=task.external_id,
                                               submit_to=claim["s"], assignment=assignment)
        except IntegrityError as exc:
            raise Conflict("this HIT was just answered in another window") from exc
        if counted:
            _record_answer(assignment=assignment, worker=worker, study=study, cleaned=cleaned, shown=shown)
        else:
            Answer.objects.create(assignment=assignment, task=task, worker=worker, payload=cleaned, shown_at=shown,
                                  submitted_at=now, flag=Answer.Flag.UNCONFIRMED)
            Assignment.objects.filter(pk=assignment.pk).update(submitted_at=now)
    return assignment


def assignment_confirm(*, assignment: Assignment) -> bool:
    """The crowd site confirmed an ``unconfirmed`` answer: it counts now (a slot, the time filters, approval).

    Returns False, changing nothing, when the answer is not unconfirmed or its task has no slot left.
    """
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().select_related("task__study").get(pk=assignment.pk)
        answer = Answer.objects.filter(assignment=assignment, flag=Answer.Flag.UNCONFIRMED).first()
        if answer is None or assignment.state != A.REJECTED:
            return False
        study = assignment.task.study
        flag = time_flag(study, (answer.submitted_at - answer.shown_at).total_seconds())
        Answer.objects.filter(pk=answer.pk).update(flag=flag)
        if flag:
            return True
        if not Task.objects.filter(pk=assignment.task_id, filled__lt=F("wanted")).update(filled=F("filled") + 1):
            Answer.objects.filter(pk=answer.pk).update(flag=Answer.Flag.UNCONFIRMED)
            return False
        assignment.state = A.SUBMITTED
        assignment.decided_at = None
        assignment.save(update_fields=["state", "decided_at", "updated_at"])
        if study.auto_approve:
            _approve(assignment)
        _quality_checks(assignment=assignment, study=study, worker=assignment.worker, counted=True)
    return True
