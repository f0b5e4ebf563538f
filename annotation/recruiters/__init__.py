"""Crowd backends behind one :class:`~annotation.recruiters.base.Recruiter` interface (SPEC §2).

``internal`` (the platform's own pool), ``mturk`` (Amazon Mechanical Turk through boto3) and
``prolific`` (a Prolific-style study link). Use :func:`by_name` / :func:`recruiter_for`.
"""
from annotation.recruiters.base import RECRUITERS, Recruiter, RecruitmentStatus, by_name, recruiter_for
from annotation.recruiters import internal, mturk, prolific  # noqa: E402,F401 - register the recruiters

__all__ = ["RECRUITERS", "Recruiter", "RecruitmentStatus", "by_name", "recruiter_for", "choices"]


def choices() -> list[tuple[str, str]]:
    """(nickname, title) of every recruiter, for the study form."""
    return [(name, cls.title) for name, cls in RECRUITERS.items()]
