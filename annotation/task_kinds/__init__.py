"""Task kinds as plug-ins, registered by name (as zennit registers composites).

The API a kind implements is in :mod:`annotation.task_kinds.base`; ``ARCHITECTURE.md`` shows how
to add one. Views and services never branch on the kind.
"""
from __future__ import annotations

import importlib
import pkgutil

from annotation.task_kinds.base import (
    LABEL_COLUMNS,
    META_FIELDS,
    KindJob,
    OutputFile,
    Progress,
    StudyContext,
    TaskKind,
    TaskRecord,
    TaskSpec,
    staged,
)

__all__ = ["LABEL_COLUMNS", "META_FIELDS", "TASK_KINDS", "KindJob", "OutputFile", "Progress", "StudyContext",
           "TaskKind", "TaskRecord", "TaskSpec", "get_task_kind", "load_all", "register_task_kind", "staged"]

TASK_KINDS: dict[str, TaskKind] = {}
#: Modules of this package that are not kinds.
_SUPPORT = {"base", "fields", "benchmark", "salient"}


def register_task_kind(cls: type[TaskKind]) -> type[TaskKind]:
    """Class decorator: add one instance of ``cls`` to :data:`TASK_KINDS` under ``cls.name``."""
    if cls.name in TASK_KINDS and type(TASK_KINDS[cls.name]) is not cls:
        raise ValueError(f"task kind {cls.name!r} is registered twice")
    TASK_KINDS[cls.name] = cls()
    return cls


def get_task_kind(name: str) -> TaskKind:
    try:
        return TASK_KINDS[name]
    except KeyError:
        known = ", ".join(sorted(TASK_KINDS)) or "none"
        raise KeyError(f"unknown task kind {name!r}; known kinds: {known}") from None


def load_all() -> None:
    """Import every kind module of this package so that each kind registers itself."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _SUPPORT:
            importlib.import_module(f"{__name__}.{info.name}")
