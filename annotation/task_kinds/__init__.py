"""Task kinds as plug-ins, registered by name (as zennit registers composites).

A kind declares what a task shows (``build_items``), its answer schema (``answer_fields``), the
worker template, the pure aggregation in ``analysis`` (``aggregate``) and how a simulated worker
answers from ground truth. Views and services never branch on the kind.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from annotation.errors import AnswerInvalid
from annotation.task_kinds.fields import Field

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from django import forms

    from annotation.models import Study, Task

#: Form keys that travel with every answer but are not part of it.
META_FIELDS = frozenset({"csrfmiddlewaretoken", "token", "shown_at"})

TASK_KINDS: dict[str, "TaskKind"] = {}

Progress = Callable[[int, int, str], None]


@attrs.frozen
class TaskSpec:
    """A task to create: a stable key, what it shows, and the known answer if any."""

    key: str
    payload: dict[str, Any]
    truth: dict[str, Any] | None = None
    is_gold: bool = False


@attrs.frozen
class OutputFile:
    """A file of a study's outputs (table, plot, archive) made after aggregation."""

    name: str
    data: bytes
    title: str = ""


class TaskKind:
    """Base class of task kinds; subclasses set the class attributes and the methods."""

    name: ClassVar[str]
    title: ClassVar[str]
    template: ClassVar[str]
    #: The answer field whose value is the task's label for aggregation.
    label_field: ClassVar[str]

    def settings_form(self) -> type["forms.Form"]:
        raise NotImplementedError

    def default_settings(self) -> dict[str, Any]:
        return {}

    def answer_fields(self, task: "Task") -> list[Field]:
        raise NotImplementedError

    def build_items(self, study: "Study", progress: Progress) -> Iterable["TaskSpec | OutputFile"]:
        """The tasks to create; an :class:`OutputFile` among them is an analysis result stored with the evidence."""
        raise NotImplementedError

    def aggregate(self, answers: "pd.DataFrame", study_settings: Mapping[str, Any]) -> "pd.DataFrame":
        """Labels per task from a long answers table with ``task, worker, label`` columns."""
        raise NotImplementedError

    def simulate_answer(self, task: "Task", rng: "np.random.Generator", accuracy: float) -> dict[str, Any]:
        raise NotImplementedError

    def expected_label(self, task: "Task") -> str | None:
        """The label the task should get when every worker answers its known truth (None: unknown)."""
        return (task.truth or {}).get(self.label_field)

    def build_outputs(self, study: "Study", labels: "pd.DataFrame", progress: Progress) -> list[OutputFile]:
        """Files made from the aggregated labels (a Celery job after aggregation); none by default."""
        return []

    has_outputs: ClassVar[bool] = False

    #: A page of the analysis results (``studies/<id>/results/``), or None.
    results_template: ClassVar[str | None] = None
    #: The kind's own jobs a researcher can start once the evidence exists: name -> title.
    extra_jobs: ClassVar[dict[str, str]] = {}

    def results_context(self, study: "Study") -> dict[str, Any]:
        """Template context of the results page, beside ``study`` and ``outputs`` (name -> StudyOutput)."""
        return {}

    def job_form(self, name: str, study: "Study") -> type["forms.Form"]:
        """The form validating the parameters of the kind's job ``name``."""
        raise NotImplementedError

    def run_job(self, name: str, study: "Study", params: Mapping[str, Any], progress: Progress) -> list[OutputFile]:
        """Run the kind's job ``name`` (on a Celery worker) and return its files."""
        raise NotImplementedError

    def validate_answer(self, payload: Mapping[str, Any], task: "Task") -> dict[str, Any]:
        """Clean a submitted answer, or raise :class:`AnswerInvalid` naming every bad field."""
        fields = self.answer_fields(task)
        known = {f.name for f in fields}
        errors: dict[str, str] = {}
        for key in payload:
            if key not in known and key not in META_FIELDS:
                errors[key] = "unknown field"
        cleaned: dict[str, Any] = {}
        for field in fields:
            try:
                cleaned[field.name] = field.clean(payload.get(field.name))
            except ValueError as exc:
                errors[field.name] = str(exc)
        if errors:
            raise AnswerInvalid(errors)
        return cleaned


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
    """Import every module of this package so that each kind registers itself."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "fields":
            importlib.import_module(f"{__name__}.{info.name}")
