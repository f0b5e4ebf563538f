"""Signed per-assignment tokens: a task page proves which assignment it answers without a cookie."""
from __future__ import annotations

from django.core import signing

from annotation.errors import Forbidden

SALT = "annotation.assignment"


def assignment_token(assignment) -> str:
    return signing.dumps({"a": assignment.pk, "w": assignment.worker_id}, salt=SALT, compress=True)


def assignment_token_check(*, token: str | None, assignment) -> None:
    """Raise :class:`Forbidden` unless ``token`` was issued for this assignment and its worker."""
    if not token:
        raise Forbidden("the assignment token is missing")
    try:
        data = signing.loads(token, salt=SALT)
    except signing.BadSignature as exc:
        raise Forbidden("the assignment token is invalid") from exc
    if data != {"a": assignment.pk, "w": assignment.worker_id}:
        raise Forbidden("the assignment token belongs to another assignment or worker")
