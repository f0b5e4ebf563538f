"""Quality control: time filters, gold checks, exclusion, early stopping, block lists and bonuses."""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F

from annotation import selectors
from annotation.errors import ApplicationError, Conflict
from annotation.models import GOLD_SLOTS, Answer, Assignment, BlockedWorker, Bonus, Study, Task, Worker
from annotation.recruiters import by_name, recruiter_for
from annotation.selectors import stopping_policy
from annotation.services.people import external_worker
from annotation.services.slots import release_slot, task_reopen
from annotation.task_kinds import get_task_kind

log = logging.getLogger(__name__)
A = Assignment.State

def time_flag(study: Study, seconds: float) -> str:
    """The flag of an answer given after ``seconds`` under the study's time filters ("" = fine)."""
    if study.min_answer_seconds and seconds < study.min_answer_seconds:
        return Answer.Flag.TOO_FAST
    if study.max_answer_seconds is not None and seconds > study.max_answer_seconds:
        return Answer.Flag.TOO_SLOW
    return ""


def gold_check(*, study: Study, worker: Worker) -> None:
    """Exclude the worker from the study once their gold accuracy falls below the threshold."""
    field = get_task_kind(study.kind).label_field
    rows = Answer.objects.filter(worker=worker, task__study=study, task__is_gold=True).values_list(
        "payload", "task__truth")
    scored = [p.get(field) == t[field] for p, t in rows if t and t.get(field) is not None]
    if len(scored) < max(study.gold_min_answers, 1):
        return
    accuracy = sum(scored) / len(scored)
    if accuracy < study.gold_min_accuracy:
        log.info("worker %s excluded from study %s: gold accuracy %.2f", worker.pk, study.pk, accuracy)
        worker_exclude_from_study(study=study, worker=worker, flag=Answer.Flag.GOLD_FAILED)


def worker_exclude_from_study(*, study: Study, worker: Worker, flag: str = Answer.Flag.GOLD_FAILED) -> int:
    """Exclude a worker: no more tasks; their answers stay stored but flagged and no longer count.

    Their counted assignments on non-gold tasks become rejected (the slots go back to the queue),
    their open ones expire. Returns how many answers were flagged.
    """
    flagged = 0
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        study.excluded_workers.add(worker)
        counted = Assignment.objects.filter(
            worker=worker, task__study=study, task__is_gold=False, state__in=(A.SUBMITTED, A.APPROVED)
        ).values_list("pk", "task_id")
        for assignment_id, task_id in list(counted):
            flagged += Answer.objects.filter(assignment_id=assignment_id, flag="").update(flag=flag)
            release_slot(assignment_id=assignment_id, to=A.REJECTED, frm=(A.SUBMITTED, A.APPROVED))
            stopped_task_recheck(task_id=task_id)
        for assignment_id in list(Assignment.objects.filter(worker=worker, task__study=study, state=A.ASSIGNED)
                                  .values_list("pk", flat=True)):
            release_slot(assignment_id=assignment_id, to=A.EXPIRED)
    return flagged


def early_stop_check(*, task_id: int) -> bool:
    """Stop collecting answers for a task once the stopping policy predicts its full-answer label; True if stopped.

    The policy (``annotation.selectors.stopping_policy.policy``) weighs each answer by its worker's reliability.
    A stopped task
    keeps being checked as the answers of assignments still open when it stopped arrive: it is reopened when
    they make its label uncertain again (or complete it), else its label follows them.
    """
    task = Task.objects.select_for_update().select_related("study").get(pk=task_id)
    if task.is_gold:
        return False
    study = task.study
    kind = get_task_kind(study.kind)
    rows = list(Answer.objects.filter(task=task, assignment__state__in=selectors.COUNTED)
                .order_by("submitted_at", "id").values_list("worker_id", "payload"))
    values = [payload.get(kind.label_field) for _, payload in rows]
    space = stopping_policy.vote_space(study.kind, selectors.study_conf(study=study))
    if not space.labels or any(value is None for value in values):
        return False
    values = [str(value) for value in values]
    workers = [worker for worker, _ in rows]
    model = stopping_policy.crowd_model(study, space, workers).without(task.pk)
    decision = stopping_policy.policy().decide(space, values, workers, study.workers_per_task - len(values), model)
    if task.stopped_early:
        if not decision.stop:
            task_reopen(task_id=task.pk)
        elif decision.label != task.stop_label:
            Task.objects.filter(pk=task.pk, stopped_early=True).update(stop_label=decision.label)
        return False
    if not decision.stop:
        return False
    stopped = Task.objects.filter(pk=task.pk, stopped_early=False).update(
        wanted=F("filled"), stopped_early=True, stop_label=decision.label)
    if stopped:
        # lazy: breaks the services ↔ workers.tasks cycle
        from workers.tasks import stop_external_task

        transaction.on_commit(lambda: stop_external_task.delay(task.pk))
    return bool(stopped)


def stopped_task_recheck(*, task_id: int) -> None:
    """An answer of a task stopped early no longer counts: the task reopens unless its label is still predicted."""
    with transaction.atomic():
        if Task.objects.filter(pk=task_id, stopped_early=True).exists():
            early_stop_check(task_id=task_id)


def task_set_gold(*, researcher, task: Task, truth_label: str | None) -> Task:
    """Mark a task gold with its known label (``None`` unmarks it); only before the study goes live."""
    with transaction.atomic():
        task = Task.objects.select_for_update().select_related("study").get(pk=task.pk)
        study = task.study
        if study.owner_id != researcher.pk:
            raise selectors.NotFound("no such task in your studies")
        if study.state not in (Study.State.DRAFT, Study.State.READY):
            raise Conflict(f"study {study.name!r} is {study.state}: gold tasks are chosen before launch")
        kind = get_task_kind(study.kind)
        if truth_label is None:
            task.is_gold = False
            task.wanted = study.workers_per_task
        else:
            choices = kind.label_choices(selectors.study_conf(study=study))
            if truth_label not in choices:
                raise ApplicationError(f"{truth_label!r} is not one of {', '.join(choices)}")
            task.is_gold = True
            task.truth = {**(task.truth or {}), kind.label_field: truth_label}
            task.wanted = GOLD_SLOTS
        task.save(update_fields=["is_gold", "truth", "wanted", "updated_at"])
    return task


def worker_block(*, researcher, worker: Worker, reason: str = "") -> BlockedWorker:
    """Put a worker on the researcher's block list (and block them on their crowd site too)."""
    entry, _ = BlockedWorker.objects.get_or_create(researcher=researcher, worker=worker,
                                                   defaults={"reason": reason[:255]})
    for pk in Assignment.objects.filter(worker=worker, state=A.ASSIGNED, task__study__owner=researcher).values_list(
            "pk", flat=True):
        release_slot(assignment_id=pk, to=A.EXPIRED)
    try:
        by_name(worker.backend).block(worker, reason)
    except Exception as exc:  # the local block stands; say what the crowd site answered
        raise ApplicationError(f"blocked here, but the crowd site refused the block: {exc}") from exc
    return entry


def worker_block_list(*, researcher, backend: str, ids: list[str], reason: str = "") -> list[BlockedWorker]:
    """Block many workers by id: user names for the internal pool, external ids for crowd sites.

    External ids not seen yet get a worker row, so they are refused when they first arrive.
    """
    entries = []
    for raw in ids:
        ident = raw.strip()
        if not ident:
            continue
        if backend == Worker.Backend.INTERNAL:
            worker = Worker.objects.filter(user__username=ident).first()
            if worker is None:
                raise selectors.NotFound(f"no internal worker named {ident!r}")
        else:
            worker = external_worker(backend=backend, external_id=ident)
        entries.append(worker_block(researcher=researcher, worker=worker, reason=reason))
    return entries


def assignment_pay_bonus(*, researcher, assignment: Assignment, cents: int, reason: str) -> Bonus:
    """Pay a bonus of at most ``SALIENT_MAX_BONUS_CENTS`` through the study's recruiter and record it."""
    assignment = Assignment.objects.select_related("task__study", "worker").get(pk=assignment.pk)
    if assignment.task.study.owner_id != researcher.pk:
        raise selectors.NotFound("no such assignment in your studies")
    if assignment.state != A.APPROVED:
        raise Conflict(f"bonuses go to approved assignments; this one is {assignment.state}")
    if cents < 1:
        raise ApplicationError("a bonus must be at least one cent")
    if cents > settings.SALIENT_MAX_BONUS_CENTS:
        raise ApplicationError(f"a bonus may be at most {settings.SALIENT_MAX_BONUS_CENTS} cents "
                               "(SALIENT_MAX_BONUS_CENTS)")
    with transaction.atomic():
        bonus = Bonus.objects.create(assignment=assignment, paid_by=researcher, cents=cents, reason=reason)
        recruiter_for(assignment.task.study).pay_bonus(assignment, cents, reason)
    return bonus

