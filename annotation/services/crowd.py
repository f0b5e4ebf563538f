"""Recruitment: opening and closing crowd sites, external workers and sessions, reconciliation."""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation import selectors
from annotation.errors import ApplicationError, Conflict, Forbidden
from annotation.locks import exclusive
from annotation.models import Answer, Artifact, Assignment, ExternalSession, Job, Study, Task, Worker
from annotation.recruiters import RecruiterError, RecruitmentStatus, recruiter_for
from annotation.services.assignments import assignment_confirm
from annotation.task_kinds import get_task_kind

log = logging.getLogger(__name__)
A = Assignment.State
#: The periodic reconciliation runs one at a time; each study's reconciliation too (the last one at close).
RECONCILE_LOCK = "reconcile-crowd-backends"
RECONCILE_WAIT_SECONDS = 120


def artifacts_make_public(*, study: Study) -> int:
    """Artifacts a launched study shows are served without sign-in (crowd pages carry no session)."""
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


def enqueue_recruitment(*, study: Study, verb: str) -> None:
    # lazy: breaks the services ↔ workers.tasks cycle
    from workers.tasks import close_recruitment, open_recruitment

    if verb == "open":
        job = Job.objects.create(study=study, name="recruit", message="queued")
        transaction.on_commit(lambda: open_recruitment.delay(job.pk))
    else:
        transaction.on_commit(lambda: close_recruitment.delay(study.pk))


def study_open_recruitment(*, job: Job) -> None:
    """Open the study's recruitment (MTurk: one HIT per task); safe to run twice."""
    if job.state == Job.State.DONE:
        return
    study = job.study
    Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING, started_at=timezone.now(),
                                         attempts=F("attempts") + 1, error="")
    if study.state != Study.State.LIVE:
        Job.objects.filter(pk=job.pk).update(state=Job.State.DONE, message=f"study is {study.state}; nothing opened",
                                             finished_at=timezone.now())
        return
    status = recruitment_open(study=study)
    message = "; ".join([f"{len(status.opened)} opened", *status.messages])
    Job.objects.filter(pk=job.pk).update(state=Job.State.DONE, done=1, total=1, message=message[:255],
                                         finished_at=timezone.now())


def recruitment_open(*, study: Study) -> RecruitmentStatus:
    """Open the study on its crowd site and record what the site made (HIT ids, a completion code)."""
    status = recruiter_for(study).open(study, study.workers_per_task)
    for task_id, external_id in status.external_ids.items():
        Task.objects.filter(pk=task_id, external_id="").update(external_id=external_id)
    if status.completion_code:
        study_set_completion_code(study=study, code=status.completion_code)
    return status


def study_close_recruitment(*, study: Study) -> None:
    """Close the study on its crowd site, then reconcile it a last time: the periodic run covers live studies only."""
    recruiter_for(study).close(study)
    if study.tasks.exclude(external_id="").exists():
        try:
            study_reconcile(study=study, wait=RECONCILE_WAIT_SECONDS)
        except Exception:  # the site is closed all the same; reopening the study reconciles it again
            log.exception("the last reconciliation of study %s failed", study.pk)


def task_stop_external(*, task: Task) -> None:
    recruiter_for(task.study).stop_task(task)


def recruitment_reconcile_all() -> int:
    """Let each live study's recruiter reconcile with its crowd site; returns the changes made.

    A run that finds another one in progress does nothing (0): beat's next run comes soon.
    """
    with exclusive(RECONCILE_LOCK) as held:
        if not held:
            log.info("crowd reconciliation skipped: another run is in progress")
            return 0
        changed = 0
        studies = Study.objects.filter(state=Study.State.LIVE, tasks__external_id__gt="").distinct().order_by("id")
        for study in studies:
            try:
                changed += study_reconcile(study=study).changed
            except Exception:
                log.exception("reconciling study %s failed", study.pk)
        return changed


def study_reconcile(*, study: Study, wait: float = 0.0) -> RecruitmentStatus:
    """Read every assignment the crowd site lists; approve/reject the submitted ones as the platform decided.

    Never two at once for one study: one that waits ``wait`` seconds for another in vain does nothing.
    """
    with exclusive(f"{RECONCILE_LOCK}:study:{study.pk}", wait=wait) as held:
        if not held:
            log.warning("study %s not reconciled: another reconciliation of it is in progress", study.pk)
            return RecruitmentStatus(recruiting=study.state == Study.State.LIVE,
                                     messages=["another reconciliation of this study is in progress"])
        return _reconcile(study)


def _reconcile(study: Study) -> RecruitmentStatus:
    recruiter = recruiter_for(study)
    status = RecruitmentStatus(recruiting=study.state == Study.State.LIVE)
    for task in study.tasks.exclude(external_id="").order_by("id"):
        for item in recruiter.platform_assignments(task):
            said = item.status
            assignment, decision, reason = assignment_platform_decision(
                task=task, external_id=item.assignment_id, worker_external_id=item.worker_id, platform_status=said)
            if assignment is None:
                status.messages.append(f"{study.backend} assignment {item.assignment_id} is unknown here")
                continue
            if said != "Submitted" or decision is None:
                continue
            try:
                if decision == "approve":
                    recruiter.approve(assignment)
                    said = "Approved"
                else:
                    recruiter.reject(assignment, reason)
                    said = "Rejected"
            except RecruiterError as exc:
                status.messages.append(f"{item.assignment_id}: {exc}")
                continue
            assignment_record_platform_status(assignment=assignment, status=said)
            status.changed += 1
    return status


def task_set_external_id(*, task: Task, external_id: str) -> None:
    Task.objects.filter(pk=task.pk, external_id="").update(external_id=external_id)
    task.external_id = task.external_id or external_id


def study_set_completion_code(*, study: Study, code: str) -> None:
    Study.objects.filter(pk=study.pk).update(completion_code=code)
    study.completion_code = code




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
        selectors.check_may_work(worker=worker, study=study)
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


def external_entry_confirm(*, study: Study, session_id: str, participant_id: str) -> None:
    """Refuse an entry the crowd site denies (Prolific with an API token); one it cannot be asked about passes."""
    recruiter = recruiter_for(study)
    if recruiter.confirm_session(study, session_id, participant_id) is False:
        raise Forbidden(f"{recruiter.title} does not know this session as this participant's")


def external_session_complete(*, study: Study, worker: Worker) -> None:
    ExternalSession.objects.filter(study=study, worker=worker, completed_at__isnull=True).update(
        completed_at=timezone.now())


def assignment_platform_decision(
    *, task: Task, external_id: str, worker_external_id: str, platform_status: str
) -> tuple[Assignment | None, str | None, str]:
    """Record what the crowd site says of an assignment and decide: ("approve"|"reject"|None, reason).

    An ``unconfirmed`` answer whose pair the site lists as submitted is confirmed first (it counts from now).
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
    if answer.flag == Answer.Flag.UNCONFIRMED:
        # The site lists this pair as submitted: that is the confirmation the answer waited for.
        if not assignment_confirm(assignment=assignment):
            return assignment, None, "confirmed, but the task has no slot left"
        assignment.refresh_from_db()
        answer.refresh_from_db()
    if assignment.state == A.APPROVED:
        try:
            get_task_kind(task.study.kind).validate_answer(answer.payload, selectors.study_conf(study=task.study))
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
