"""The recruiter interface: how a study finds crowd workers and pays them.

One subclass per crowd backend, registered by its ``nickname`` (as Dallinger's recruiters are).
The rest of the platform calls only these verbs through :func:`recruiter_for`, never a backend
by name. Required verbs raise ``NotImplementedError``; optional hooks are no-ops.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from annotation.models import Assignment, Study, Task, Worker

RECRUITERS: dict[str, type["Recruiter"]] = {}


class RecruiterError(Exception):
    """A crowd site refused a call (the message says what it answered)."""


@dataclass
class RecruitmentStatus:
    """What a recruiter reports after opening or closing a study; the services record it.

    ``external_ids`` maps task ids to the crowd site's id of the task (an MTurk HIT id);
    ``completion_code`` is a new code the crowd site must be told (Prolific).
    """

    recruiting: bool = False
    opened: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    changed: int = 0
    external_ids: dict[int, str] = field(default_factory=dict)
    completion_code: str = ""


@dataclass(frozen=True)
class PlatformAssignment:
    """One assignment as the crowd site lists it."""

    assignment_id: str
    worker_id: str
    status: str


@dataclass(frozen=True)
class NextStep:
    """Where a crowd worker goes after an answer was stored; the external views carry it out.

    ``post``: an auto-submitted form (``url``, ``fields``) back to the crowd site (MTurk);
    ``next_task``: the worker's next task of the study, or the completion redirect (Prolific).
    """

    action: str
    url: str = ""
    fields: dict[str, Any] = field(default_factory=dict)


class Recruiter:
    """Base recruiter: subclasses set ``nickname``/``title`` and implement the required verbs.

    A recruiter is an adapter: it talks to its crowd site and returns values (HIT ids, platform
    statuses, the next step of a worker); it never writes the platform's records itself.
    """

    nickname: ClassVar[str]
    title: ClassVar[str]
    #: Platform fee as a share of the reward (per assignment), and its minimum in cents.
    fee_rate: ClassVar[float] = 0.0
    fee_min_cents: ClassVar[int] = 0
    #: Workers of this backend take tasks from the shared queue (``assignment_claim_next``).
    claims_from_queue: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        nickname = cls.__dict__.get("nickname")
        if nickname:
            if nickname in RECRUITERS and RECRUITERS[nickname].__qualname__ != cls.__qualname__:
                raise ValueError(f"recruiter nickname {nickname!r} is used twice")
            RECRUITERS[nickname] = cls

    # --- required verbs -------------------------------------------------------------------
    def open(self, study: "Study", n: int) -> RecruitmentStatus:
        """Start recruiting ``n`` workers per task for a launched study; safe to call twice."""
        raise NotImplementedError

    def close(self, study: "Study") -> RecruitmentStatus:
        """Stop recruiting: no new worker may start the study."""
        raise NotImplementedError

    def approve(self, assignment: "Assignment") -> None:
        """Accept (and pay for) a submitted assignment on the crowd site."""
        raise NotImplementedError

    def reject(self, assignment: "Assignment", reason: str) -> None:
        """Refuse a submitted assignment on the crowd site, telling the worker why."""
        raise NotImplementedError

    def pay_bonus(self, assignment: "Assignment", cents: int, reason: str) -> None:
        """Pay the worker of ``assignment`` a bonus of ``cents``."""
        raise NotImplementedError

    # --- optional hooks -------------------------------------------------------------------
    def recruit_more(self, study: "Study", n: int) -> RecruitmentStatus:
        """Ask for ``n`` more workers per unfinished task (after rejections, for instance)."""
        return RecruitmentStatus(recruiting=True)

    def block(self, worker: "Worker", reason: str) -> None:
        """Block the worker on the crowd site too (the platform's own block list is kept anyway)."""

    def stop_task(self, task: "Task") -> None:
        """Stop offering ``task`` (early stopping settled its label)."""

    def platform_assignments(self, task: "Task") -> Iterable[PlatformAssignment]:
        """The crowd site's assignments of ``task`` (reconciliation reads them); none by default."""
        return ()

    def confirm_assignment(self, task: "Task", assignment_id: str, worker_id: str) -> bool | None:
        """Does the crowd site know ``assignment_id`` as ``worker_id``'s assignment of ``task``?

        True: confirmed; False: the site denies it (unknown id, another worker or task); None: the site could
        not be asked (it is down, or the backend has no API). The base has nothing to ask: None.
        """
        return None

    def confirm_session(self, study: "Study", session_id: str, participant_id: str) -> bool | None:
        """Does the crowd site know ``session_id`` as ``participant_id``'s session of ``study``? As
        :meth:`confirm_assignment`, for backends whose participants take a whole study (Prolific)."""
        return None

    def launch_problem(self, study: "Study") -> str:
        """Why ``study`` cannot be launched on this backend yet ("" when it can)."""
        return ""

    def after_submit(self, assignment: "Assignment") -> NextStep | None:
        """Where the worker of an external task page goes once the answer is stored; None: the default page."""
        return None

    def describe(self, study: "Study", base_url: str) -> list[tuple[str, str]]:
        """(label, value) lines for the study page: where workers come in, codes to configure."""
        return []

    # --- money ----------------------------------------------------------------------------
    def fee_cents(self, reward_cents: int, workers_per_task: int) -> float:
        """The platform's fee for one assignment paid ``reward_cents``."""
        if reward_cents <= 0:
            return 0.0
        return max(reward_cents * self.fee_rate, float(self.fee_min_cents))

    def cost_estimate(self, *, tasks: int, gold_tasks: int, workers_per_task: int, reward_cents: int,
                      gold_rate: float) -> dict[str, Any]:
        """Tasks × workers × reward + the platform fee, before launch; gold answers on top."""
        answers = tasks * workers_per_task
        gold_answers = math.ceil(answers * gold_rate / (1 - gold_rate)) if gold_rate > 0 and gold_tasks else 0
        paid = answers + gold_answers
        fee = self.fee_cents(reward_cents, workers_per_task)
        return {
            "backend": self.nickname,
            "answers": answers,
            "gold_answers": gold_answers,
            "reward_cents": paid * reward_cents,
            "fee_cents": round(paid * fee, 2),
            "fee_per_answer_cents": round(fee, 2),
            "total_cents": round(paid * (reward_cents + fee), 2),
        }
