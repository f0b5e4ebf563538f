"""API tokens (the writes of `annotation.api`): create (the secret is returned once), revoke, and resolve a presented
token to its researcher (recording when it was last used)."""
from __future__ import annotations

import hashlib
import secrets

from django.utils import timezone

from annotation.api.models import ApiToken
from annotation.errors import ApplicationError
from annotation.roles import is_researcher
from annotation.selectors import NotFound

PREFIX = "ss_"


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(*, user, name: str = "") -> tuple[ApiToken, str]:
    """A new token for researcher ``user``; returns the row and the secret (not stored, shown once)."""
    if not is_researcher(user):
        raise ApplicationError(f"{user} is not a researcher; API tokens are for researchers", extra={"field": "user"})
    if len(name) > 100:
        raise ApplicationError("a token name has at most 100 characters", extra={"field": "name"})
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[:10], key_hash=_digest(raw))
    return token, raw


def token_revoke(*, user, pk: int) -> ApiToken:
    token = ApiToken.objects.filter(pk=pk, user=user).first()
    if token is None:
        raise NotFound("no such token of yours")
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=pk).update(revoked_at=timezone.now())
        token.refresh_from_db()
    return token


def token_user(raw: str):
    """The researcher a live token belongs to, or None."""
    if not raw or not raw.startswith(PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=_digest(raw), revoked_at__isnull=True).first()
    if token is None or not token.user.is_active or not is_researcher(token.user):
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user
