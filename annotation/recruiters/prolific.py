"""Prolific-style study link: participants arrive with ``PROLIFIC_PID``, ``STUDY_ID`` and ``SESSION_ID``.

A participant answers tasks of the study one after the other (up to the study's per-worker cap) and
is then redirected to ``https://app.prolific.com/submissions/complete?cc=CODE``. The same participant
id cannot start the study twice (a reload of the same session resumes it), and ``STUDY_ID`` must be the
study's configured Prolific id (required at launch). With ``SALIENT_PROLIFIC_API_TOKEN`` set, each entry is
confirmed with Prolific's API (the submission ``SESSION_ID`` must exist, be ``PROLIFIC_PID``'s and belong to
the study). Without a token nothing proves that a ``PROLIFIC_PID`` is a real participant: the exported
answers are then matched to Prolific's submissions in its dashboard. Link only: approvals,
rejections and bonuses are made in Prolific's own dashboard, from the exported answers.
"""
from __future__ import annotations

import json
import logging
import secrets
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings

from annotation.errors import ApplicationError
from annotation.recruiters.base import NextStep, Recruiter, RecruitmentStatus

log = logging.getLogger(__name__)

COMPLETION_URL = "https://app.prolific.com/submissions/complete"
ENTRY_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")


API_URL = "https://api.prolific.com/api/v1"


class ProlificUnavailable(Exception):
    """Prolific's API could not be asked (network, server error)."""


class ProlificService:
    """The few Prolific API endpoints the platform reads; one method per endpoint, all through :meth:`_req`."""

    def __init__(self, token: str, base_url: str = API_URL) -> None:
        self.token = token
        self.base_url = base_url.rstrip("/")

    def _req(self, path: str) -> dict[str, Any] | None:
        """GET ``path``: the decoded JSON, None for a 404; :class:`ProlificUnavailable` otherwise."""
        request = urllib.request.Request(self.base_url + path, headers={"Authorization": f"Token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return json.load(reply)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise ProlificUnavailable(f"Prolific answered {exc.code} for {path}") from exc
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise ProlificUnavailable(f"Prolific could not be asked for {path}: {exc}") from exc

    def get_submission(self, submission_id: str) -> dict[str, Any] | None:
        return self._req(f"/submissions/{quote(submission_id, safe='')}/")


def completion_url(code: str) -> str:
    return f"{COMPLETION_URL}?{urlencode({'cc': code})}"


def new_completion_code() -> str:
    return secrets.token_hex(4).upper()


class ProlificRecruiter(Recruiter):
    nickname = "prolific"
    title = "Prolific (study link)"
    fee_rate = 1 / 3
    fee_min_cents = 0

    def __init__(self, service: ProlificService | None = None) -> None:
        token = getattr(settings, "SALIENT_PROLIFIC_API_TOKEN", "")
        self.service = service or (ProlificService(token) if token else None)

    def fee_cents(self, reward_cents: int, workers_per_task: int) -> float:
        if reward_cents <= 0:
            return 0.0
        return reward_cents * float(getattr(settings, "SALIENT_PROLIFIC_FEE_RATE", self.fee_rate))

    def entry_url(self, study, base_url: str) -> str:
        query = "&".join(f"{p}={{{{%{p}%}}}}" for p in ENTRY_PARAMS)
        return f"{base_url.rstrip('/')}/ext/prolific/{study.pk}/?{query}"

    def confirm_session(self, study, session_id: str, participant_id: str) -> bool | None:
        """Prolific's submission ``session_id`` is ``participant_id``'s in the study; None without a token."""
        if self.service is None:
            return None
        try:
            item = self.service.get_submission(session_id)
        except ProlificUnavailable as exc:
            log.warning("prolific submission %s could not be checked: %s", session_id, exc)
            return None
        return (item is not None and item.get("participant_id") == participant_id
                and item.get("study_id") == study.recruitment.get("prolific_study_id"))

    def launch_problem(self, study) -> str:
        if not study.recruitment.get("prolific_study_id"):
            return ("set the study's Prolific study id before launching on Prolific: "
                    "entries are checked against it (STUDY_ID)")
        return ""

    def open(self, study, n: int) -> RecruitmentStatus:
        return RecruitmentStatus(recruiting=True, opened=[self.entry_url(study, settings.SALIENT_PUBLIC_URL)],
                                 messages=["paste the study URL and the completion code into Prolific"],
                                 completion_code="" if study.completion_code else new_completion_code())

    def close(self, study) -> RecruitmentStatus:
        return RecruitmentStatus(recruiting=False,
                                 messages=["new participants are refused; pause the study in Prolific"])

    def approve(self, assignment) -> None:
        """Approved in Prolific's dashboard: a link-only backend has no API to call."""

    def reject(self, assignment, reason: str) -> None:
        """Rejected in Prolific's dashboard; the exports list flagged answers with their reason."""

    def pay_bonus(self, assignment, cents: int, reason: str) -> None:
        raise ApplicationError(
            "Prolific bonuses are paid in Prolific's dashboard (bulk bonus by participant id); "
            "this link-based backend holds no Prolific API token"
        )

    def after_submit(self, assignment) -> NextStep:
        """The participant's next task of the study, or the completion redirect when none is left."""
        return NextStep("next_task", url=completion_url(assignment.task.study.completion_code))

    def describe(self, study, base_url: str) -> list[tuple[str, str]]:
        return [("Prolific study URL", self.entry_url(study, settings.SALIENT_PUBLIC_URL or base_url)),
                ("Completion code", study.completion_code or "(made at launch)")]
