"""The internal pool: workers sign up on the platform (or by invitation) and take tasks from the queue.

No money moves: approving, rejecting and bonuses only change the platform's own records.
"""
from __future__ import annotations

import logging

from annotation.recruiters.base import Recruiter, RecruitmentStatus

log = logging.getLogger(__name__)


class InternalPool(Recruiter):
    nickname = "internal"
    title = "Internal pool"

    def open(self, study, n: int) -> RecruitmentStatus:
        return RecruitmentStatus(recruiting=True, messages=["workers of the internal pool see the study's tasks now"])

    def close(self, study) -> RecruitmentStatus:
        return RecruitmentStatus(recruiting=False)

    def approve(self, assignment) -> None:
        """Nothing to pay: the platform's approval is all there is."""

    def reject(self, assignment, reason: str) -> None:
        """Nothing to refuse elsewhere."""

    def pay_bonus(self, assignment, cents: int, reason: str) -> None:
        log.info("internal pool: bonus of %s cents to %s noted, no money moves (%s)", cents, assignment.worker, reason)

    def describe(self, study, base_url: str) -> list[tuple[str, str]]:
        return [("Workers sign up at", f"{base_url}/work/signup/")]
