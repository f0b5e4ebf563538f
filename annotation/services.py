"""Writes of the annotation app: every change to studies, tasks, assignments and answers goes here.

Services take keyword arguments, check the current state first and raise
:class:`annotation.errors.ApplicationError` subclasses; views stay thin. Counters that guard
invariants are changed with conditional UPDATEs, which the database serialises.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation import selectors
from annotation.errors import ApplicationError, Conflict, Forbidden
from annotation.models import (
    GOLD_SLOTS,
    Answer,
    Artifact,
    Assignment,
    BlockedWorker,
    ExternalSession,
    Invitation,
    Job,
    Study,
    StudyResult,
    Task,
    Worker,
)
from annotation.states import study_transition
from annotation.task_kinds import OutputFile, TaskSpec, get_task_kind
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
    gold_rate: float = 0.0,
    gold_min_accuracy: float = 0.6,
    gold_min_answers: int = 3,
    max_tasks_per_worker: int | None = None,
    min_answer_seconds: float = 0.0,
    max_answer_seconds: float | None = None,
    early_stopping: bool = False,
    completion_code: str = "",
    recruitment: Mapping[str, Any] | None = None,
) -> Study:
    from django.conf import settings as django_settings

    from annotation.recruiters import by_name

    task_kind = get_task_kind(kind)
    if Study.objects.filter(owner=owner, name=name).exists():
        raise Conflict(f"you already have a study named {name!r}")
    if workers_per_task < 1:
        raise ApplicationError("workers per task must be at least 1")
    try:
        by_name(backend)
    except KeyError as exc:
        raise ApplicationError(str(exc.args[0])) from exc
    if not 0 <= gold_rate < 1:
        raise ApplicationError(f"the gold rate must be in [0, 1), not {gold_rate}")
    if not 0 <= gold_min_accuracy <= 1:
        raise ApplicationError(f"the minimum gold accuracy must be in [0, 1], not {gold_min_accuracy}")
    if max_answer_seconds is not None and max_answer_seconds <= (min_answer_seconds or 0):
        raise ApplicationError("the maximum answer time must be longer than the minimum answer time")
    if max_tasks_per_worker is not None and max_tasks_per_worker < 1:
        raise ApplicationError("the per-worker cap must be at least 1 task (leave it empty for none)")
    from annotation.recruiters.prolific import new_completion_code

    return Study.objects.create(
        owner=owner,
        name=name,
        kind=kind,
        settings={**task_kind.default_settings(), **(settings or {})},
        workers_per_task=workers_per_task,
        reward_cents=reward_cents,
        assignment_seconds=assignment_seconds or django_settings.SALIENT_ASSIGNMENT_SECONDS,
        backend=backend,
        gold_rate=gold_rate,
        gold_min_accuracy=gold_min_accuracy,
        gold_min_answers=gold_min_answers,
        max_tasks_per_worker=max_tasks_per_worker,
        min_answer_seconds=min_answer_seconds or 0.0,
        max_answer_seconds=max_answer_seconds,
        early_stopping=early_stopping,
        completion_code=completion_code or new_completion_code(),
        recruitment=dict(recruitment or {}),
    )


def study_start_computing(*, study: Study) -> Job:
    """Move the study to ``computing`` and queue its evidence job (after the commit)."""
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        study_transition(study=study, to=Study.State.COMPUTING)
        return _enqueue_job(study=study, name="evidence")


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
    progress = _job_start(job)
    items = list(get_task_kind(study.kind).build_items(study, progress))
    specs = [item for item in items if isinstance(item, TaskSpec)]
    files = [item for item in items if isinstance(item, OutputFile)]
    stored = _store_files(files)
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
                    "wanted": GOLD_SLOTS if spec.is_gold else study.workers_per_task,
                },
            )
        study.tasks.exclude(key__in=[s.key for s in specs]).delete()
        _replace_stage_outputs(study=study, stage="evidence", stored=stored)
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
    """Go live: the study's artifacts become viewable by crowd workers and its recruiter opens (a job)."""
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        if study.state == Study.State.READY and not study.tasks.exists():
            raise ApplicationError(f"study {study.name!r} has no tasks to launch")
        study = study_transition(study=study, to=Study.State.LIVE)
        _artifacts_make_public(study=study)
        _enqueue_recruitment(study=study, verb="open")
        return study


def study_close(*, study: Study) -> Study:
    """Stop handing out tasks; open assignments expire and their late submissions are refused."""
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        study_transition(study=study, to=Study.State.CLOSED)
        _enqueue_recruitment(study=study, verb="close")
    for pk in Assignment.objects.filter(task__study=study, state=A.ASSIGNED).values_list("pk", flat=True):
        _release_slot(assignment_id=pk, to=A.EXPIRED)
    return study


def study_aggregate(*, study: Study) -> Study:
    """Aggregate the accepted answers into one result per task and move to ``aggregated``."""
    kind = get_task_kind(study.kind)
    answers = selectors.study_label_answers(study=study, label_field=kind.label_field)
    table = kind.aggregate(answers, {**study.settings, "workers_per_task": study.workers_per_task})
    from annotation.quality import study_quality_report

    report, ds = study_quality_report(study=study, majority=table["label"] if len(table) else table.get("label"))
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        study_transition(study=study, to=Study.State.AGGREGATED)
        Study.objects.filter(pk=study.pk).update(quality=report)
        StudyResult.objects.filter(study=study).delete()
        count_cols = [c for c in table.columns if c.startswith("count_")]
        results = []
        for task in study.tasks.all():
            if task.pk in table.index:
                row = table.loc[task.pk]
                label = row["label"]
                ds_label = ds.labels_.get(task.pk) if len(ds.labels_) else None
                results.append(StudyResult(
                    study=study, task=task, label="" if label is None else str(label), tie=bool(row["tie"]),
                    complete=bool(row["complete"]) or (task.stopped_early and int(row["n_answers"]) >= task.wanted),
                    n_answers=int(row["n_answers"]),
                    counts={c.removeprefix("count_"): int(row[c]) for c in count_cols},
                    ds_label="" if ds_label is None else str(ds_label),
                    ds_probability=None if ds_label is None else round(float(ds.confidence_[task.pk]), 6),
                ))
            else:
                results.append(StudyResult(study=study, task=task, complete=False, n_answers=0, counts={}))
        StudyResult.objects.bulk_create(results)
        if kind.has_outputs:
            _enqueue_job(study=study, name="outputs")
    return study


def _enqueue_job(*, study: Study, name: str, params: dict | None = None) -> Job:
    from workers import tasks

    job = Job.objects.create(study=study, name=name, message="queued", params=params or {})
    task = {"evidence": tasks.compute_study_evidence, "outputs": tasks.compute_study_outputs}.get(
        name, tasks.run_kind_job)
    transaction.on_commit(lambda: task.delay(job.pk))
    return job


def _store_files(files: list[OutputFile]) -> list[tuple[OutputFile, "Artifact"]]:
    from annotation.artifacts import artifact_store_bytes

    return [(f, artifact_store_bytes(data=f.data, ext=f.name.rsplit(".", 1)[-1], kind="output")) for f in files]


def _replace_stage_outputs(*, study: Study, stage: str, stored: list) -> None:
    """Swap a job stage's files for new ones in one transaction (other stages' files stay)."""
    from annotation.models import StudyOutput

    with transaction.atomic():
        StudyOutput.objects.filter(study=study, stage=stage).delete()
        clashes = StudyOutput.objects.filter(study=study, name__in=[f.name for f, _ in stored])
        if clashes.exists():
            raise ApplicationError(f"output names {sorted(clashes.values_list('name', flat=True))} "
                                   f"are already made by another stage")
        StudyOutput.objects.bulk_create(
            [StudyOutput(study=study, name=f.name, artifact=a, title=f.title, stage=stage) for f, a in stored]
        )


def _job_start(job: Job) -> Callable[[int, int, str], None]:
    """Mark a job running; returns its progress callback."""
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1, error=""
    )

    def progress(done: int, total: int, message: str = "") -> None:
        job_progress(job_id=job.pk, done=done, total=total, message=message)

    return progress


def _job_finish_with_files(*, job: Job, stage: str, files: list[OutputFile]) -> None:
    stored = _store_files(files)
    with transaction.atomic():
        _replace_stage_outputs(study=job.study, stage=stage, stored=stored)
        Job.objects.filter(pk=job.pk).update(
            state=Job.State.DONE, done=1, total=1, message=f"{len(stored)} output files", finished_at=timezone.now()
        )


def study_compute_outputs(*, job: Job) -> None:
    """Make the kind's output files from the aggregated labels and store them; safe to run twice."""
    from annotation.exports import study_labels_table

    if job.state == Job.State.DONE:
        return
    progress = _job_start(job)
    kind = get_task_kind(job.study.kind)
    files = kind.build_outputs(job.study, study_labels_table(study=job.study), progress)
    _job_finish_with_files(job=job, stage="outputs", files=files)


def study_start_kind_job(*, study: Study, name: str, params: Mapping[str, Any]) -> Job:
    """Queue one of the kind's own jobs (e.g. SpRAy's un-Hans retrain) with validated parameters.

    Needs the study's evidence (state ready or later) and no running job of the same name.
    """
    kind = get_task_kind(study.kind)
    if name not in kind.extra_jobs:
        known = ", ".join(kind.extra_jobs) or "none"
        raise ApplicationError(f"study kind {study.kind!r} has no job {name!r}; its jobs: {known}")
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        if study.state in (Study.State.DRAFT, Study.State.COMPUTING):
            raise ApplicationError(f"the {name} job needs the study's evidence; the study is {study.state}")
        if study.jobs.filter(name=name, state__in=(Job.State.PENDING, Job.State.RUNNING)).exists():
            raise ApplicationError(f"a {name} job of this study is already queued or running")
        return _enqueue_job(study=study, name=name, params=dict(params))


def study_run_kind_job(*, job: Job) -> None:
    """Run a kind's own job and store its files under the job's name; safe to run twice."""
    if job.state == Job.State.DONE:
        return
    progress = _job_start(job)
    files = get_task_kind(job.study.kind).run_job(job.name, job.study, job.params, progress)
    _job_finish_with_files(job=job, stage=job.name, files=files)


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
    target = open_tasks.filter(is_gold=False).values_list("study", flat=True).first()
    if target is None:
        return []
    in_study = open_tasks.filter(study_id=target)
    normal = list(in_study.filter(is_gold=False)[:25])
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
            shown = assignment.shown_at or assignment.created_at
            flag = _time_flag(study, (now - shown).total_seconds())
            try:
                with transaction.atomic():
                    answer = Answer.objects.create(
                        assignment=assignment, task=assignment.task, worker=worker, payload=cleaned,
                        shown_at=shown, submitted_at=now, flag=flag,
                    )
            except IntegrityError as exc:
                raise Conflict("this assignment already has an answer") from exc
            assignment.state = A.SUBMITTED
            assignment.submitted_at = now
            assignment.save(update_fields=["state", "submitted_at", "updated_at"])
            if flag:
                # Kept but not counted: the slot goes back so that someone else answers the task.
                _release_slot(assignment_id=assignment.pk, to=A.REJECTED, frm=(A.SUBMITTED,))
                assignment.state = A.REJECTED
            elif study.auto_approve:
                _approve(assignment)
            if assignment.task.is_gold:
                _gold_check(study=study, worker=worker)
            elif not flag and study.early_stopping:
                _early_stop_check(task_id=assignment.task_id)
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


# --- quality control --------------------------------------------------------------------------

def _time_flag(study: Study, seconds: float) -> str:
    """The flag of an answer given after ``seconds`` under the study's time filters ("" = fine)."""
    if study.min_answer_seconds and seconds < study.min_answer_seconds:
        return Answer.Flag.TOO_FAST
    if study.max_answer_seconds is not None and seconds > study.max_answer_seconds:
        return Answer.Flag.TOO_SLOW
    return ""


def _gold_check(*, study: Study, worker: Worker) -> None:
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
            _release_slot(assignment_id=assignment_id, to=A.REJECTED, frm=(A.SUBMITTED, A.APPROVED))
            # An early-stopped task whose label rested on this answer collects answers again.
            Task.objects.filter(pk=task_id, stopped_early=True).update(
                stopped_early=False, wanted=study.workers_per_task)
        for assignment_id in list(Assignment.objects.filter(worker=worker, task__study=study, state=A.ASSIGNED)
                                  .values_list("pk", flat=True)):
            _release_slot(assignment_id=assignment_id, to=A.EXPIRED)
    return flagged


def _early_stop_check(*, task_id: int) -> bool:
    """Stop collecting answers for a task once the rest cannot change its label; True if stopped."""
    from analysis.aggregation.early_stopping import label_settled

    task = Task.objects.select_for_update().select_related("study").get(pk=task_id)
    if task.stopped_early or task.is_gold:
        return False
    study = task.study
    kind = get_task_kind(study.kind)
    payloads = Answer.objects.filter(task=task, assignment__state__in=selectors.COUNTED).values_list(
        "payload", flat=True)
    labels = [p.get(kind.label_field) for p in payloads]
    remaining = task.wanted - len(labels)
    field = next((f for f in kind.answer_fields(task) if f.name == kind.label_field), None)
    values = [str(v) for v in getattr(field, "choices", ())]
    if remaining <= 0 or not values or any(label is None for label in labels):
        return False
    conf = {**study.settings, "workers_per_task": study.workers_per_task}
    if not label_settled(labels, remaining, values, lambda table: kind.aggregate(table, conf)):
        return False
    stopped = Task.objects.filter(pk=task.pk, stopped_early=False).update(wanted=F("filled"), stopped_early=True)
    if stopped:
        from workers.tasks import stop_external_task

        transaction.on_commit(lambda: stop_external_task.delay(task.pk))
    return bool(stopped)


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
            field = next((f for f in kind.answer_fields(task) if f.name == kind.label_field), None)
            choices = [str(c) for c in getattr(field, "choices", ())]
            if truth_label not in choices:
                raise ApplicationError(f"{truth_label!r} is not one of {', '.join(choices)}")
            task.is_gold = True
            task.truth = {**(task.truth or {}), kind.label_field: truth_label}
            task.wanted = GOLD_SLOTS
        task.save(update_fields=["is_gold", "truth", "wanted", "updated_at"])
    return task


def worker_block(*, researcher, worker: Worker, reason: str = "") -> BlockedWorker:
    """Put a worker on the researcher's block list (and block them on their crowd site too)."""
    from annotation.recruiters import by_name

    entry, _ = BlockedWorker.objects.get_or_create(researcher=researcher, worker=worker,
                                                   defaults={"reason": reason[:255]})
    for pk in Assignment.objects.filter(worker=worker, state=A.ASSIGNED, task__study__owner=researcher).values_list(
            "pk", flat=True):
        _release_slot(assignment_id=pk, to=A.EXPIRED)
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


def assignment_pay_bonus(*, researcher, assignment: Assignment, cents: int, reason: str) -> None:
    """Pay a bonus through the study's recruiter (the internal pool only records it in the log)."""
    from annotation.recruiters import recruiter_for

    assignment = Assignment.objects.select_related("task__study", "worker").get(pk=assignment.pk)
    if assignment.task.study.owner_id != researcher.pk:
        raise selectors.NotFound("no such assignment in your studies")
    if assignment.state != A.APPROVED:
        raise Conflict(f"bonuses go to approved assignments; this one is {assignment.state}")
    if cents < 1:
        raise ApplicationError("a bonus must be at least one cent")
    recruiter_for(assignment.task.study).pay_bonus(assignment, cents, reason)


# --- recruitment ------------------------------------------------------------------------------

def _artifacts_make_public(*, study: Study) -> int:
    """Artifacts a launched study shows are served without sign-in (crowd pages carry no session)."""
    import re

    pattern = re.compile(r"^([0-9a-f]{64})\.[A-Za-z0-9]+$")
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if match := pattern.match(value):
                found.add(match.group(1))
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    for payload in study.tasks.values_list("payload", flat=True):
        walk(payload)
    return Artifact.objects.filter(sha256__in=found, public=False).update(public=True)


def _enqueue_recruitment(*, study: Study, verb: str) -> None:
    from workers.tasks import close_recruitment, open_recruitment

    if verb == "open":
        job = Job.objects.create(study=study, name="recruit", message="queued")
        transaction.on_commit(lambda: open_recruitment.delay(job.pk))
    else:
        transaction.on_commit(lambda: close_recruitment.delay(study.pk))


def study_open_recruitment(*, job: Job) -> None:
    """Open the study's recruitment (MTurk: one HIT per task); safe to run twice."""
    from annotation.recruiters import recruiter_for

    if job.state == Job.State.DONE:
        return
    study = job.study
    Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING, started_at=timezone.now(),
                                         attempts=F("attempts") + 1, error="")
    if study.state != Study.State.LIVE:
        Job.objects.filter(pk=job.pk).update(state=Job.State.DONE, message=f"study is {study.state}; nothing opened",
                                             finished_at=timezone.now())
        return
    status = recruiter_for(study).open(study, study.workers_per_task)
    message = "; ".join([f"{len(status.opened)} opened", *status.messages])
    Job.objects.filter(pk=job.pk).update(state=Job.State.DONE, done=1, total=1, message=message[:255],
                                         finished_at=timezone.now())


def study_close_recruitment(*, study: Study) -> None:
    from annotation.recruiters import recruiter_for

    recruiter_for(study).close(study)


def task_stop_external(*, task: Task) -> None:
    from annotation.recruiters import recruiter_for

    recruiter_for(task.study).stop_task(task)


def recruitment_reconcile_all() -> int:
    """Let each recruiting study's recruiter reconcile with its crowd site; returns changes made."""
    from annotation.recruiters import recruiter_for

    changed = 0
    studies = Study.objects.filter(
        state__in=(Study.State.LIVE, Study.State.CLOSED, Study.State.AGGREGATED)
    ).filter(tasks__external_id__gt="").distinct()
    for study in studies:
        try:
            changed += recruiter_for(study).reconcile(study).changed
        except Exception:
            log.exception("reconciling study %s failed", study.pk)
    return changed


def task_set_external_id(*, task: Task, external_id: str) -> None:
    Task.objects.filter(pk=task.pk, external_id="").update(external_id=external_id)
    task.external_id = task.external_id or external_id


def study_set_completion_code(*, study: Study, code: str) -> None:
    Study.objects.filter(pk=study.pk).update(completion_code=code)
    study.completion_code = code


def external_worker(*, backend: str, external_id: str) -> Worker:
    """The worker row of an external id from a crowd backend, made on first sight."""
    worker = Worker.objects.filter(backend=backend, external_id=external_id).first()
    if worker is not None:
        return worker
    try:
        with transaction.atomic():
            return Worker.objects.create(backend=backend, external_id=external_id)
    except IntegrityError:
        return Worker.objects.get(backend=backend, external_id=external_id)


def _check_may_work(*, worker: Worker, study: Study) -> None:
    if worker.blocked:
        raise Forbidden("this worker is blocked on the platform")
    if BlockedWorker.objects.filter(researcher_id=study.owner_id, worker=worker).exists():
        raise Forbidden("this worker is blocked by the study's researcher")
    if study.excluded_workers.filter(pk=worker.pk).exists():
        raise Forbidden("this worker is excluded from the study (quality checks)")


def assignment_start_external(
    *, task: Task, worker: Worker, external_id: str, backend: str, submit_to: str = "", external_study_id: str = ""
) -> Assignment:
    """A worker arriving from a crowd site for one task (one HIT): their assignment, made or resumed.

    A returned or expired assignment of the same worker is revived under the new external id; an
    answered one is refused, and so is an external id that belongs to another worker.
    """
    with transaction.atomic():
        task = Task.objects.select_related("study").get(pk=task.pk)
        study = task.study
        if study.state != Study.State.LIVE:
            raise Conflict(f"study {study.name!r} is {study.state} and takes no answers")
        _check_may_work(worker=worker, study=study)
        if Assignment.objects.filter(external_id=external_id, task__study=study).exclude(worker=worker).exists():
            raise Conflict("this assignment id belongs to another worker")
        expires = timezone.now() + dt.timedelta(seconds=study.assignment_seconds)
        assignment = Assignment.objects.select_for_update().filter(task=task, worker=worker).first()
        if assignment is None and selectors.worker_had_exclusion_sibling(worker=worker, task=task):
            raise Conflict("you already worked on another version of this item in this study; please return it")
        if assignment is None:
            if not Task.objects.filter(pk=task.pk, filled__lt=F("wanted")).update(filled=F("filled") + 1):
                raise Conflict("this task has all the answers it wants; please return it")
            try:
                with transaction.atomic():
                    assignment = Assignment.objects.create(task=task, worker=worker, external_id=external_id,
                                                           expires_at=expires)
            except IntegrityError as exc:
                raise Conflict("this task was just started by you in another window") from exc
        elif assignment.state == A.ASSIGNED:
            if assignment.external_id != external_id:
                assignment.external_id = external_id
                assignment.save(update_fields=["external_id", "updated_at"])
        elif assignment.state in (A.EXPIRED, A.RETURNED):
            if not Task.objects.filter(pk=task.pk, filled__lt=F("wanted")).update(filled=F("filled") + 1):
                raise Conflict("this task has all the answers it wants; please return it")
            assignment.state = A.ASSIGNED
            assignment.external_id = external_id
            assignment.expires_at = expires
            assignment.shown_at = None
            assignment.decided_at = None
            assignment.save(update_fields=["state", "external_id", "expires_at", "shown_at", "decided_at",
                                           "updated_at"])
        else:
            raise Conflict(f"you already answered this task (your assignment is {assignment.state})")
        try:
            with transaction.atomic():
                ExternalSession.objects.update_or_create(
                    assignment=assignment,
                    defaults={"study": study, "worker": worker, "backend": backend, "session_id": external_id,
                              "external_study_id": external_study_id, "submit_to": submit_to},
                )
        except IntegrityError as exc:
            raise Conflict("this assignment id is already used for another task") from exc
    return assignment


def external_session_start(
    *, study: Study, worker: Worker, backend: str, session_id: str, external_study_id: str = ""
) -> ExternalSession:
    """A participant starting a study from a crowd site; the same participant cannot start twice.

    Reloading the entry link of the same, unfinished session resumes it.
    """
    with transaction.atomic():
        study = Study.objects.get(pk=study.pk)
        if study.state != Study.State.LIVE:
            raise Conflict(f"study {study.name!r} is {study.state} and takes no participants")
        _check_may_work(worker=worker, study=study)
        existing = ExternalSession.objects.filter(study=study, worker=worker, backend=backend).first()
        if existing is not None:
            if existing.session_id == session_id and existing.completed_at is None:
                return existing
            raise Conflict(f"participant {worker.external_id} has already started this study; "
                           "each participant takes part once")
        try:
            with transaction.atomic():
                return ExternalSession.objects.create(study=study, worker=worker, backend=backend,
                                                      session_id=session_id, external_study_id=external_study_id)
        except IntegrityError as exc:
            raise Conflict("this session id was already used") from exc


def external_session_complete(*, study: Study, worker: Worker) -> None:
    ExternalSession.objects.filter(study=study, worker=worker, completed_at__isnull=True).update(
        completed_at=timezone.now())


def assignment_platform_decision(
    *, task: Task, external_id: str, worker_external_id: str, platform_status: str
) -> tuple[Assignment | None, str | None, str]:
    """Record what the crowd site says of an assignment and decide: ("approve"|"reject"|None, reason).

    Approve when the answer is stored, still valid and the assignment approved here; reject when it
    was rejected here (flag or researcher); leave anything else alone.
    """
    assignment = (Assignment.objects.select_related("worker", "task__study")
                  .filter(task=task, external_id=external_id).first())
    if assignment is None or assignment.worker.external_id != worker_external_id:
        return None, None, ""
    assignment_record_platform_status(assignment=assignment, status=platform_status)
    if platform_status != "Submitted":
        return assignment, None, ""
    answer = Answer.objects.filter(assignment=assignment).first()
    if answer is None:
        return assignment, None, "no answer stored"
    if assignment.state == A.APPROVED:
        try:
            get_task_kind(task.study.kind).validate_answer(answer.payload, task)
        except ApplicationError:
            return assignment, None, "the stored answer is no longer valid"
        return assignment, "approve", ""
    if assignment.state == A.REJECTED:
        reason = Answer.Flag(answer.flag).label if answer.flag else "rejected by the researcher"
        return assignment, "reject", f"Your answer was not accepted: {reason}."
    return assignment, None, ""


def assignment_record_platform_status(*, assignment: Assignment, status: str) -> None:
    Assignment.objects.filter(pk=assignment.pk).update(platform_status=status[:32], platform_checked_at=timezone.now())
    assignment.platform_status = status
