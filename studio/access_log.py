"""gunicorn's access log without secrets: task and claim tokens (``?t=``), answer tokens and invitations are
replaced by ``[redacted]`` in every logged field -- the request line, the query string and the Referer (a task
page's images are fetched with the page's address, token included, as Referer)."""
from __future__ import annotations

import re

from gunicorn.glogging import Logger

#: Query parameters that carry a credential.
SECRET_PARAMETERS = ("t", "token", "invite")
_SECRET = re.compile(r"(^|[?&;])(" + "|".join(SECRET_PARAMETERS) + r")=[^&;#\s\"]*")


def scrub(text: str) -> str:
    """``text`` (a URL, a query string or a request line) with the secret parameters' values redacted."""
    return _SECRET.sub(r"\1\2=[redacted]", text)


class ScrubbingLogger(Logger):
    """gunicorn's logger whose access-log fields pass through :func:`scrub`."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: scrub(value) if isinstance(value, str) else value for key, value in atoms.items()}
