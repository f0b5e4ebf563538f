"""Amazon Mechanical Turk: one HIT per task, an ExternalQuestion framing the platform's task page.

The page receives ``assignmentId``, ``hitId``, ``workerId`` and ``turkSubmitTo``; a preview
(``ASSIGNMENT_ID_NOT_AVAILABLE``) shows the task without a form. After the answer is stored the page
posts ``assignmentId`` to ``{turkSubmitTo}/mturk/externalSubmit``. A periodic task reconciles:
it lists each HIT's assignments, approves those whose answer is stored and valid (rejects those the
platform rejected: failed gold, time filters, the researcher) and records what MTurk says.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from django.conf import settings

from annotation.errors import ApplicationError
from annotation.recruiters.base import NextStep, PlatformAssignment, Recruiter, RecruiterError, RecruitmentStatus
from annotation.recruiters.mturk_client import MTurkService

log = logging.getLogger(__name__)

EXTERNAL_QUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"
PREVIEW_ASSIGNMENT_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"
#: MTurk's system qualification types (MTurk API reference: QualificationRequirement).
QUAL_PERCENT_APPROVED = "000000000000000000L0"
QUAL_HITS_APPROVED = "00000000000000000040"
QUAL_LOCALE = "00000000000000000071"
FINAL_STATUSES = frozenset({"Approved", "Rejected"})


def external_question(url: str, frame_height: int = 0) -> str:
    """The ``Question`` of an ExternalQuestion HIT pointing at ``url`` (HTTPS)."""
    return (f'<ExternalQuestion xmlns="{EXTERNAL_QUESTION_NS}"><ExternalURL>{escape(url)}</ExternalURL>'
            f"<FrameHeight>{frame_height}</FrameHeight></ExternalQuestion>")


def dollars(cents: int) -> str:
    """``12`` -> ``"0.12"`` (MTurk's Reward and BonusAmount are dollar strings)."""
    return f"{Decimal(int(cents)) / 100:.2f}"


def unique_request_token(study, task) -> str:
    """The same for every retry of one task's HIT creation, and distinct across studies and databases."""
    digest = hashlib.sha256(f"{study.pk}:{task.pk}:{study.created_at.isoformat()}".encode()).hexdigest()[:16]
    return f"salient-{study.pk}-{task.pk}-{digest}"


def _option(study, key: str, default: Any) -> Any:
    return study.recruitment.get(key, default)


def qualification_requirements(study) -> list[dict[str, Any]]:
    """Approval rate, approved HITs and locale, each guarding who may accept the HIT."""
    percent = int(_option(study, "min_approval_percent", settings.SALIENT_MTURK_MIN_APPROVAL_PERCENT))
    approved = int(_option(study, "min_hits_approved", settings.SALIENT_MTURK_MIN_HITS_APPROVED))
    locales = list(_option(study, "locales", settings.SALIENT_MTURK_LOCALES))
    requirements = [
        {"QualificationTypeId": QUAL_PERCENT_APPROVED, "Comparator": "GreaterThanOrEqualTo",
         "IntegerValues": [percent], "ActionsGuarded": "Accept"},
        {"QualificationTypeId": QUAL_HITS_APPROVED, "Comparator": "GreaterThanOrEqualTo",
         "IntegerValues": [approved], "ActionsGuarded": "Accept"},
    ]
    if locales:
        requirements.append({"QualificationTypeId": QUAL_LOCALE, "Comparator": "In",
                             "LocaleValues": [{"Country": c} for c in locales], "ActionsGuarded": "Accept"})
    return requirements


@contextmanager
def _refusals() -> Iterator[None]:
    """MTurk's refusal of a call as a :class:`RecruiterError`."""
    # deferred: loads botocore
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as exc:
        raise RecruiterError(str(exc)) from exc


class MTurkRecruiter(Recruiter):
    nickname = "mturk"
    title = "Amazon Mechanical Turk"
    fee_rate = 0.20
    fee_min_cents = 1
    claims_from_queue = False  # a worker arrives through one HIT, which is one task

    def __init__(self, service: MTurkService | None = None) -> None:
        self.service = service or MTurkService(sandbox=settings.SALIENT_MTURK_SANDBOX)

    def fee_cents(self, reward_cents: int, workers_per_task: int) -> float:
        """20 % of the reward, 40 % for HITs with 10 or more assignments, at least one cent."""
        if reward_cents <= 0:
            return 0.0
        rate = 0.40 if workers_per_task >= 10 else 0.20
        return max(reward_cents * rate, 1.0)

    # --- HITs ------------------------------------------------------------------------------
    def task_url(self, task) -> str:
        base = settings.SALIENT_PUBLIC_URL.rstrip("/")
        if not base.startswith("https://"):
            raise ApplicationError(
                f"MTurk frames only HTTPS pages: set SALIENT_PUBLIC_URL to the site's https:// address (now {base!r})"
            )
        return f"{base}/ext/mturk/{task.pk}/"

    def hit_params(self, study, task, n: int) -> dict[str, Any]:
        return {
            "Title": str(_option(study, "title", study.name))[:128],
            "Description": str(_option(study, "description",
                                       f"Answer a short question about images ({study.name})"))[:2000],
            "Keywords": str(_option(study, "keywords", "image, classification, labeling")),
            "Reward": dollars(study.reward_cents),
            "MaxAssignments": int(n),
            "AssignmentDurationInSeconds": int(study.assignment_seconds),
            "LifetimeInSeconds": int(_option(study, "lifetime_seconds", settings.SALIENT_MTURK_LIFETIME_SECONDS)),
            "AutoApprovalDelayInSeconds": int(settings.SALIENT_MTURK_AUTO_APPROVAL_SECONDS),
            "Question": external_question(self.task_url(task)),
            "RequesterAnnotation": f"salient study {study.pk} task {task.pk}",
            "UniqueRequestToken": unique_request_token(study, task),
            "QualificationRequirements": qualification_requirements(study),
        }

    def _find_hit(self, annotation: str) -> str | None:
        token = None
        while True:
            page = self.service.list_hits(token)
            for hit in page.get("HITs", []):
                if hit.get("RequesterAnnotation") == annotation:
                    return hit["HITId"]
            token = page.get("NextToken")
            if not token or not page.get("HITs"):
                return None

    def create_hit(self, study, task, n: int) -> str:
        """Create the task's HIT once: a retry reuses the UniqueRequestToken and finds the first HIT."""
        # deferred: loads botocore
        from botocore.exceptions import ClientError

        params = self.hit_params(study, task, n)
        try:
            return self.service.create_hit(**params)["HITId"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            text = f"{error.get('Code', '')} {error.get('Message', '')}"
            if "already exists" not in text and "UniqueRequestToken" not in text:
                raise
            hit_id = self._find_hit(params["RequesterAnnotation"])
            if hit_id is None:
                raise ApplicationError(f"MTurk says the HIT of task {task.key!r} exists but it is not listed") from exc
            return hit_id

    def open(self, study, n: int) -> RecruitmentStatus:
        status = RecruitmentStatus(recruiting=True)
        for task in study.tasks.filter(external_id="").order_by("id"):
            hit_id = self.create_hit(study, task, n)
            status.external_ids[task.pk] = hit_id
            status.opened.append(hit_id)
        return status

    def recruit_more(self, study, n: int) -> RecruitmentStatus:
        status = RecruitmentStatus(recruiting=True)
        for task in study.tasks.exclude(external_id="").filter(stopped_early=False):
            token = f"more-{unique_request_token(study, task)[8:]}-{task.approved}"[:64]
            self.service.create_additional_assignments_for_hit(task.external_id, n, token)
            status.opened.append(task.external_id)
        return status

    def close(self, study) -> RecruitmentStatus:
        status = RecruitmentStatus(recruiting=False)
        for hit_id in study.tasks.exclude(external_id="").values_list("external_id", flat=True):
            self.service.update_expiration_for_hit(hit_id)
            status.changed += 1
        return status

    def stop_task(self, task) -> None:
        if task.external_id:
            self.service.update_expiration_for_hit(task.external_id)

    # --- money and people -----------------------------------------------------------------
    def approve(self, assignment) -> None:
        with _refusals():
            self.service.approve_assignment(assignment.external_id, "Thank you!")

    def reject(self, assignment, reason: str) -> None:
        with _refusals():
            self.service.reject_assignment(assignment.external_id,
                                           reason or "the answer did not meet the study's checks")

    def pay_bonus(self, assignment, cents: int, reason: str) -> None:
        if cents <= 0:
            raise ApplicationError("a bonus must be at least one cent")
        token = hashlib.sha256(f"{assignment.pk}:{cents}:{reason}".encode()).hexdigest()[:32]
        self.service.send_bonus(worker_id=assignment.worker.external_id, assignment_id=assignment.external_id,
                                dollars=dollars(cents), reason=reason or "bonus", token=f"bonus-{token}")

    def block(self, worker, reason: str) -> None:
        if worker.backend == self.nickname and worker.external_id:
            self.service.create_worker_block(worker.external_id, reason)

    # --- reconciliation -------------------------------------------------------------------
    def platform_assignments(self, task) -> Iterator[PlatformAssignment]:
        """Every assignment MTurk lists for the task's HIT, page by page."""
        token = None
        while True:
            page = self.service.list_assignments_for_hit(task.external_id, token)
            items = page.get("Assignments", [])
            for item in items:
                yield PlatformAssignment(item["AssignmentId"], item["WorkerId"], item["AssignmentStatus"])
            token = page.get("NextToken")
            if not token or not items:
                return

    def confirm_assignment(self, task, assignment_id: str, worker_id: str) -> bool | None:
        """GetAssignment: MTurk confirms when it knows the id as this worker's assignment of the task's HIT.

        An assignment MTurk does not return yet (not submitted there) or denies is False; a failed call None.
        """
        # deferred: loads botocore
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            item = self.service.get_assignment(assignment_id)
        except ClientError:
            return False
        except BotoCoreError as exc:
            log.warning("mturk GetAssignment %s could not be asked: %s", assignment_id, exc)
            return None
        return item.get("HITId") == task.external_id and item.get("WorkerId") == worker_id

    # --- pages ----------------------------------------------------------------------------
    def after_submit(self, assignment) -> NextStep | None:
        """Post ``assignmentId`` (and the stored answer's id) to ``{turkSubmitTo}/mturk/externalSubmit``."""
        session = getattr(assignment, "external_session", None)
        if session is None or not session.submit_to:
            return None
        return NextStep("post", url=session.submit_to.rstrip("/") + "/mturk/externalSubmit",
                        fields={"assignmentId": session.session_id, "answer": assignment.answer.pk})

    def describe(self, study, base_url: str) -> list[tuple[str, str]]:
        hits = study.tasks.exclude(external_id="").count()
        lines = [("MTurk endpoint", self.service.endpoint), ("HITs created", f"{hits} of {study.tasks.count()}")]
        try:
            lines.append(("HIT page", self.task_url(study.tasks.first()) if study.tasks.exists() else "—"))
        except ApplicationError as exc:
            lines.append(("HIT page", exc.message))
        return lines
