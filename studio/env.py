"""Reading typed settings from the environment; a bad value names the variable."""
from __future__ import annotations

import os
import re

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below its minimum {minimum}")
    return number


def env_list(name: str, default: str = "", *, sep: str = ",") -> list[str]:
    """Items of a ``sep``-separated variable, blanks dropped (``sep=None``: any whitespace)."""
    return [item.strip() for item in os.environ.get(name, default).split(sep) if item.strip()]


def env_pair(name: str) -> tuple[str, str] | None:
    """``HEADER,value`` (e.g. ``SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https``) or None when unset."""
    items = env_list(name)
    if not items:
        return None
    if len(items) != 2:
        raise ImproperlyConfigured(f"{name}={os.environ[name]!r} must be two comma-separated values, e.g. "
                                   "HTTP_X_FORWARDED_PROTO,https")
    return items[0], items[1]


_RATE = re.compile(r"^\d+/\d*[smhd]$")


def env_rate(name: str, default: str) -> str:
    """A django-ratelimit rate such as ``10/m`` (count per s, m, h, d; ``5/10m``: per 10 minutes)."""
    value = os.environ.get(name, default).strip()
    if not _RATE.match(value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate like 10/m, 100/h or 5/10m")
    return value
