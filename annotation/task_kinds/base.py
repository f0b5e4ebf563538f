"""The task-kind API: what a study kind declares, and what the platform gives it.

A kind is one module under ``annotation/task_kinds`` with one :class:`TaskKind` subclass,
registered with :func:`annotation.task_kinds.register_task_kind`. It declares:

* ``settings_form`` — a Django form class; its fields' ``initial`` values are the kind's defaults
  (:meth:`TaskKind.default_settings` reads them, nothing else holds defaults).
* :meth:`TaskKind.answer_fields` — the answer schema, once per study: it depends on the study's
  settings (``conf``) only, never on a task.
* :meth:`TaskKind.aggregator` — an object with ``fit(answers) -> self`` and ``table_``. The answers
  table has the columns ``task, worker, label``; ``table_`` is indexed by task id and has the
  columns of :data:`LABEL_COLUMNS` (``label``: str or None; ``tie``, ``complete``: bool;
  ``n_answers``: int) plus ``count_<value>`` columns. :meth:`TaskKind.aggregate` checks that.
* :meth:`TaskKind.build_tasks` — the evidence step: yields :class:`TaskSpec` (tasks to create) and
  :class:`OutputFile` (analysis files stored with the evidence), from a :class:`StudyContext`.
* :meth:`TaskKind.build_outputs` — files made after aggregation from the labels DataFrame; a kind
  that overrides it ``has_outputs``.
* ``jobs`` — the kind's own Celery jobs, name -> :class:`KindJob`; ``results_template`` and
  :meth:`TaskKind.results_context` — its results page.
* :meth:`TaskKind.simulate_answer` / :meth:`TaskKind.expected_label` — the simulated crowd.
* ``default_gold_rate`` — the study's gold rate when its creator leaves it empty (gold tasks are
  ``TaskSpec(is_gold=True)``; the feature panel yields gold copies of panels whose answer is known).

A kind touches no ORM: it gets plain values (``conf`` dicts, :class:`StudyContext`, DataFrames,
:class:`TaskRecord`) and writes images through ``ctx.store``. The services build the contexts.
"""
from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs

from annotation.errors import AnswerInvalid
from annotation.task_kinds.fields import Field

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from django import forms

#: Form keys that travel with every answer but are not part of it.
META_FIELDS = frozenset({"csrfmiddlewaretoken", "token", "shown_at", "then"})  # "then": the page's "submit and stop"
#: The columns every aggregator's table has (beside ``count_<value>`` columns), indexed by task id.
LABEL_COLUMNS = ("label", "tie", "complete", "n_answers")

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
    """A file of a study's outputs (table, plot, archive) made by a job of the study."""

    name: str
    data: bytes
    title: str = ""


@attrs.frozen
class TaskRecord:
    """A stored task as a kind sees it."""

    pk: int
    key: str
    payload: dict[str, Any]
    truth: dict[str, Any] | None = None
    is_gold: bool = False


class ImageSink(Protocol):
    """Where a kind stores the images its tasks show; each call returns the artifact names."""

    def images(self, images: "np.ndarray", kind: str = "image") -> list[str]: ...


@attrs.frozen
class StudyContext:
    """What a kind sees of a study: its settings and read-only views, all loaded on demand.

    ``answers()`` has one row per answer that counts or was flagged for its time, with the columns
    ``answer, task, worker, payload, flag, counted, shown_at, submitted_at``.
    """

    id: int
    name: str
    conf: Mapping[str, Any]
    work_dir: Path
    store: ImageSink
    #: The registry entries the settings name: ``{"dataset": {...}, "models": {name: {...}}}`` (plain dicts),
    #: and ``"labels_from"`` when the settings name another study of the researcher (its kind and labels by task key).
    inputs: Mapping[str, Any] = attrs.field(factory=dict)
    #: ``run_pass(spec, progress)``: the result of a streamed pass (:class:`analysis.streaming.PassSpec`),
    #: sharded over the ``evidence`` queue when there is a broker; None: run passes in-process.
    run_pass: Callable[[Any, Progress], Any] | None = None
    #: Results kept between runs by name (``get(name) -> bytes | None``, ``put(name, bytes)``); None: no cache.
    cache: Any = None
    tasks: Callable[[], list[TaskRecord]] = list
    labels: Callable[[], dict[int, str]] = dict
    answers: Callable[[], "pd.DataFrame"] = attrs.field(default=None)
    read_output: Callable[[str], bytes | None] = lambda name: None


@attrs.frozen
class KindJob:
    """A kind's own job a researcher can start once the evidence exists (e.g. SpRAy's un-Hans retrain)."""

    title: str
    form: Callable[[StudyContext], type["forms.Form"]]
    run: Callable[[StudyContext, Mapping[str, Any], Progress], list[OutputFile]]
    #: What the job needs validation images for ("" = nothing): refused on a dataset without a validation folder.
    needs_validation: str = ""


class Aggregator(Protocol):
    table_: "pd.DataFrame"

    def fit(self, answers: "pd.DataFrame") -> "Aggregator": ...


def staged(progress: Progress, start: float, width: float) -> Progress:
    """Map a stage's (done, total) onto [start, start + width] of a 0..1000 bar."""

    def report(done: int, total: int, message: str = "") -> None:
        fraction = start + width * (done / total if total else 1.0)
        progress(min(1000, round(1000 * fraction)), 1000, message)

    return report


class TaskKind:
    """Base class of task kinds; subclasses set the class attributes and the methods."""

    name: ClassVar[str]
    title: ClassVar[str]
    template: ClassVar[str]
    #: The answer field whose value is the task's label for aggregation.
    label_field: ClassVar[str]
    settings_form: ClassVar[type["forms.Form"]]
    #: The partial of the analysis results, or None: the results page (``studies/<id>/results/``) and the
    #: archive's ``report.html`` render it; its images go through ``{% output_img %}`` / ``{% artifact_img %}``.
    results_template: ClassVar[str | None] = None
    jobs: ClassVar[Mapping[str, KindJob]] = {}
    #: The kind reads the model's last convolutional map (NAMs): a model without one is refused.
    needs_conv_map: ClassVar[bool] = False
    #: The study's gold rate when its creator leaves it empty (a kind whose tasks come with gold copies mixes them in).
    default_gold_rate: ClassVar[float] = 0.0

    # -- settings ------------------------------------------------------------------------------
    def default_settings(self) -> dict[str, Any]:
        """The settings form's initial values, cleaned as the form cleans them."""
        return copy.deepcopy(self._defaults)

    @functools.cached_property
    def _defaults(self) -> dict[str, Any]:
        form_class = self.settings_form
        initial = {name: field.initial() if callable(field.initial) else field.initial
                   for name, field in form_class.base_fields.items()}
        form = form_class(data={k: v for k, v in initial.items() if v is not None})
        if not form.is_valid():
            raise TypeError(f"the initial values of {form_class.__name__} do not validate: {form.errors.as_json()}")
        return dict(form.cleaned_data)

    def validation_use(self, conf: Mapping[str, Any]) -> str:
        """What a study with these settings needs validation images for ("" = nothing). A registered dataset
        without a validation folder is then refused (``benchmark.validation_missing``): its ``test`` split
        would otherwise be the training images."""
        return ""

    def inputs_problem(self, conf: Mapping[str, Any], inputs: Mapping[str, Any]) -> tuple[str, str] | None:
        """``(setting, why)`` when these settings cannot run on the registry entries they name (``inputs``, as
        :attr:`StudyContext.inputs`), e.g. a class folder with fewer images than asked for; None when they can."""
        return None

    def launch_problem(self, conf: Mapping[str, Any], *, backend: str, gold_tasks: int,
                       payload: Mapping[str, Any]) -> str:
        """Why a study with these settings cannot go live on ``backend`` ("" when it can): ``gold_tasks`` is
        how many gold copies it will mix in (0 at a gold rate of 0), ``payload`` a task's payload."""
        return ""

    # -- answers -------------------------------------------------------------------------------
    def answer_fields(self, conf: Mapping[str, Any]) -> list[Field]:
        raise NotImplementedError

    def label_choices(self, conf: Mapping[str, Any]) -> list[str]:
        """The values the label field can take ([] when it is not a choice)."""
        field = next((f for f in self.answer_fields(conf) if f.name == self.label_field), None)
        return [str(c) for c in getattr(field, "choices", ())]

    def label_words(self, conf: Mapping[str, Any]) -> dict[str, str]:
        """The words a researcher reads for each value a label (majority or Dawid-Skene) can take: the task
        page's option labels. A value missing here is shown as stored. Every view and export words labels
        through this (``selectors.task_grid.LabelWords``), so a label reads the same everywhere."""
        field = next((f for f in self.answer_fields(conf) if f.name == self.label_field), None)
        return {str(v): str(w) for v, w in field.options()} if hasattr(field, "options") else {}

    def validate_answer(self, payload: Mapping[str, Any], conf: Mapping[str, Any]) -> dict[str, Any]:
        """Clean a submitted answer, or raise :class:`AnswerInvalid` naming every bad field."""
        fields = self.answer_fields(conf)
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

    # -- aggregation ---------------------------------------------------------------------------
    def aggregator(self, conf: Mapping[str, Any]) -> Aggregator:
        raise NotImplementedError

    def aggregate(self, answers: "pd.DataFrame", conf: Mapping[str, Any]) -> "pd.DataFrame":
        """Labels per task from a long answers table with ``task, worker, label`` columns."""
        table = self.aggregator(conf).fit(answers).table_
        missing = [c for c in LABEL_COLUMNS if c not in table.columns]
        if missing:
            raise TypeError(f"the aggregator of {self.name!r} gave no column(s) {missing}")
        return table

    # -- evidence and outputs ------------------------------------------------------------------
    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec | OutputFile]:
        """The tasks to create; an :class:`OutputFile` among them is an analysis result stored with the evidence."""
        raise NotImplementedError

    def build_outputs(self, ctx: StudyContext, labels: "pd.DataFrame", progress: Progress) -> list[OutputFile]:
        """Files made from the aggregated labels (a Celery job after aggregation); none by default."""
        return []

    @property
    def has_outputs(self) -> bool:
        return type(self).build_outputs is not TaskKind.build_outputs

    def results_context(self, ctx: StudyContext) -> dict[str, Any]:
        """Template context of the results page, beside ``study`` and ``outputs`` (name -> StudyOutput)."""
        return {}

    # -- the simulated crowd -------------------------------------------------------------------
    def simulate_answer(self, task: TaskRecord, conf: Mapping[str, Any], rng: "np.random.Generator",
                        accuracy: float) -> dict[str, Any]:
        raise NotImplementedError

    def expected_label(self, task: TaskRecord) -> str | None:
        """The label the task should get when every worker answers its known truth (None: unknown)."""
        return (task.truth or {}).get(self.label_field)


def read_json(ctx: StudyContext, name: str) -> Any:
    """An output file of the study parsed as JSON, or None when the study has none of that name."""

    data = ctx.read_output(name)
    return None if data is None else json.loads(data)
