"""Logging configuration: plain text, or one JSON object per line (``LOG_FORMAT=json``)."""
from __future__ import annotations

import datetime as dt
import json
import logging

from django.core.exceptions import ImproperlyConfigured

FORMATS = ("text", "json")
#: Loggers of calls that move money on crowd sites: kept at INFO whatever the root level.
MONEY_LOGGERS = ("annotation.recruiters",)
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "exception"?, **extra}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        entry.update({k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and not k.startswith("_")})
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(*, fmt: str, level: str) -> dict:
    """A ``LOGGING`` dict writing to stderr in ``fmt`` at ``level`` (money-moving calls at INFO at least)."""
    if fmt not in FORMATS:
        raise ImproperlyConfigured(f"LOG_FORMAT={fmt!r} is not one of {', '.join(FORMATS)}")
    level = level.upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ImproperlyConfigured(f"LOG_LEVEL={level!r} is not a logging level (DEBUG, INFO, WARNING, ERROR)")
    text = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    formatter = {"()": JsonFormatter} if fmt == "json" else text
    money_level = min(logging.getLevelName(level), logging.INFO)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "default"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {name: {"level": logging.getLevelName(money_level)} for name in MONEY_LOGGERS},
    }
