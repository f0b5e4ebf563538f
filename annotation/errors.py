"""Errors the services raise; each carries the HTTP status a view answers with."""
from __future__ import annotations


class ApplicationError(Exception):
    """A refused request: a message for people and an HTTP status for views."""

    status = 400

    def __init__(self, message: str, *, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class IllegalTransition(ApplicationError):
    status = 409


class Conflict(ApplicationError):
    status = 409


class Forbidden(ApplicationError):
    status = 403


class TooMany(ApplicationError):
    """Refused for now: too many of something in a time window (429)."""

    status = 429


class TooLarge(ApplicationError):
    """An upload past the server's size limit, stopped while it streamed in (413)."""

    status = 413


class Unavailable(ApplicationError):
    """A service the request depends on cannot be reached; refused rather than let through (503)."""

    status = 503


class AnswerInvalid(ApplicationError):
    """An answer that does not fit its task kind's schema; ``errors`` maps field -> message."""

    status = 400

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        text = "; ".join(f"{field}: {msg}" for field, msg in errors.items())
        super().__init__(f"invalid answer: {text}", extra={"errors": errors})
