"""Signed per-assignment tokens: a task page proves which assignment it answers without a cookie.

A token names the assignment, its worker and its purpose (``pool`` for the internal pool's pages,
``ext`` for the crowd-site pages under ``/ext/``), and lasts the assignment's time plus
``SALIENT_TOKEN_MARGIN_SECONDS``. An MTurk worker gets a *claim* instead: the HIT's task, the
(assignment id, worker id) pair and ``turkSubmitTo`` signed at entry, so that nothing is stored before
the answer is.
"""
from __future__ import annotations

import time

from django.conf import settings
from django.core import signing

from annotation.errors import Forbidden

SALT = "annotation.assignment"
CLAIM_SALT = "annotation.mturk_claim"
POOL, EXTERNAL = "pool", "ext"


def token_purpose(assignment) -> str:
    """``ext`` for a worker who arrived from a crowd site, ``pool`` for the internal pool."""
    return POOL if assignment.worker.backend == "internal" else EXTERNAL


def _claims(assignment) -> dict:
    return {"a": assignment.pk, "w": assignment.worker_id, "p": token_purpose(assignment)}


def token_max_age(assignment) -> int:
    return int(assignment.task.study.assignment_seconds) + int(settings.SALIENT_TOKEN_MARGIN_SECONDS)


def assignment_token(assignment) -> str:
    return signing.dumps(_claims(assignment), salt=SALT, compress=True)


def assignment_token_check(*, token, assignment, purpose: str | None = None) -> None:
    """Raise :class:`Forbidden` unless ``token`` was issued for this assignment, its worker and ``purpose``.

    ``purpose`` (``pool`` or ``ext``) is what the page asking requires; a token past its ``max_age`` is refused.
    """
    data = _load(token, salt=SALT, max_age=token_max_age(assignment))
    if data != _claims(assignment):
        raise Forbidden("the assignment token belongs to another assignment or worker")
    if purpose is not None and data["p"] != purpose:
        raise Forbidden("this assignment token is not valid on this page")


def _load(token, *, salt: str, max_age: int) -> dict:
    if not token:
        raise Forbidden("the assignment token is missing")
    if not isinstance(token, str):
        raise Forbidden("the assignment token must be text")
    try:
        return signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise Forbidden("the assignment token has expired; open the task again") from exc
    except signing.BadSignature as exc:
        raise Forbidden("the assignment token is invalid") from exc


def mturk_claim_token(*, task, assignment_id: str, worker_id: str, submit_to: str) -> str:
    """The signed claim of an MTurk worker on ``task``'s HIT; ``at`` is when the task was first shown."""
    claim = {"t": task.pk, "a": assignment_id, "w": worker_id, "s": submit_to, "at": int(time.time())}
    return signing.dumps(claim, salt=CLAIM_SALT, compress=True)


def mturk_claim_check(*, token, task) -> dict:
    """The claim ``token`` carries for ``task`` (keys ``a``, ``w``, ``s``, ``at``); :class:`Forbidden` otherwise."""
    claim = _load(token, salt=CLAIM_SALT,
                  max_age=int(task.study.assignment_seconds) + int(settings.SALIENT_TOKEN_MARGIN_SECONDS))
    if claim.get("t") != task.pk:
        raise Forbidden("the assignment token belongs to another task")
    return claim
