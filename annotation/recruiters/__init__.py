"""Crowd backends behind one :class:`~annotation.recruiters.base.Recruiter` interface.

``internal`` (the platform's own pool), ``mturk`` (Amazon Mechanical Turk through boto3) and
``prolific`` (a Prolific-style study link). Use :func:`by_name` / :func:`recruiter_for`.
Recruiters are adapters: the services call them and record what they return.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from annotation.recruiters import internal, mturk, prolific  # noqa: F401 - register the recruiters
from annotation.recruiters.base import (
    RECRUITERS,
    NextStep,
    PlatformAssignment,
    Recruiter,
    RecruiterError,
    RecruitmentStatus,
)

if TYPE_CHECKING:
    from annotation.models import Study

__all__ = ["RECRUITERS", "NextStep", "PlatformAssignment", "Recruiter", "RecruiterError", "RecruitmentStatus",
           "by_name", "choices", "recruiter_for"]


def by_name(nickname: str) -> Recruiter:
    """A new recruiter of the backend ``nickname``; a clear error naming the known ones otherwise."""
    try:
        cls = RECRUITERS[nickname]
    except KeyError:
        known = ", ".join(sorted(RECRUITERS)) or "none"
        raise KeyError(f"unknown crowd backend {nickname!r}; known backends: {known}") from None
    return cls()


def recruiter_for(study: "Study") -> Recruiter:
    """The recruiter of ``study``'s backend."""
    return by_name(study.backend)


def choices() -> list[tuple[str, str]]:
    """(nickname, title) of every recruiter, for the study form."""
    return [(name, cls.title) for name, cls in RECRUITERS.items()]
