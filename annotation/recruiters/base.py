"""The recruiter interface: how a study finds crowd workers and pays them (SPEC §2).

One subclass per crowd backend, registered by its ``nickname`` (as Dallinger's recruiters are).
The rest of the platform calls only these verbs through :func:`recruiter_for`, never a backend
by name. Required verbs raise ``NotImplementedError``; optional hooks are no-ops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from annotation.models import Assignment, Study, Task, Worker

RECRUITERS: dict[str, type["Recruiter"]] = {}


@dataclass
class RecruitmentStatus:
    """What a recruiter reports after opening or reconciling a study."""

    recruiting: bool = False
    opened: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    changed: int = 0


class Recruiter:
    """Base recruiter: subclasses set ``nickname``/``title`` and implement the required verbs."""

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

    def reconcile(self, study: "Study") -> RecruitmentStatus:
        """Bring the crowd site and the platform into agreement (approvals, statuses)."""
        return RecruitmentStatus()

    def after_submit(self, request: "HttpRequest", assignment: "Assignment") -> "HttpResponse | None":
        """The response of an external task page after its answer was stored; None: the default."""
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


def by_name(nickname: str) -> Recruiter:
    """A new recruiter of the backend ``nickname``; a clear error naming the known ones otherwise."""
    from annotation import recruiters  # noqa: F401 - imports every recruiter module

    try:
        cls = RECRUITERS[nickname]
    except KeyError:
        known = ", ".join(sorted(RECRUITERS)) or "none"
        raise KeyError(f"unknown crowd backend {nickname!r}; known backends: {known}") from None
    return cls()


def recruiter_for(study: "Study") -> Recruiter:
    """The recruiter of ``study``'s backend."""
    return by_name(study.backend)
