"""Request and response shapes of the REST API (they make its OpenAPI schema)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Schema
from pydantic import ConfigDict


class ErrorOut(Schema):
    error: str
    field: str = ""


class StudyIn(Schema):
    """Same fields as the study form; ``settings`` holds the kind's settings (defaults fill the rest).

    An unknown field is refused (a misspelt option would otherwise be dropped and its default used).
    """

    model_config = ConfigDict(extra="forbid")
    name: str
    kind: str
    settings: dict[str, Any] = {}
    workers_per_task: int = 5
    reward_cents: int = 0
    assignment_minutes: int = 30
    backend: str = "internal"
    gold_rate: float | None = None
    gold_min_accuracy: float | None = None
    gold_min_answers: int | None = None
    max_tasks_per_worker: int | None = None
    min_answer_seconds: float | None = None
    max_answer_seconds: float | None = None
    early_stopping: bool = False
    completion_code: str = ""
    consent_text: str = ""


class StudyOut(Schema):
    id: int
    name: str
    kind: str
    state: str
    settings: dict[str, Any]
    workers_per_task: int
    reward_cents: int
    backend: str
    error: str
    created_at: datetime
    consent_text: str = ""


class KindJobIn(Schema):
    """Parameters of a kind's own job, by the names of its form's fields (defaults where left out)."""

    params: dict[str, Any] = {}


class JobOut(Schema):
    id: int
    name: str
    state: str
    done: int
    total: int
    fraction: float
    message: str
    error: str
    file: str = ""


class StudyJobOut(StudyOut):
    job: JobOut


class ProgressOut(Schema):
    state: str
    tasks: int
    received: int
    wanted: int
    fraction: float
    job: JobOut | None


class TaskOut(Schema):
    id: int
    key: str
    payload: dict[str, Any]
    is_gold: bool
    wanted: int
    filled: int
    approved: int
    stopped_early: bool


class AnswerOut(Schema):
    id: int
    task: int
    task_key: str
    class_name: str = ""
    worker: str
    worker_id: int
    assignment: int
    status: str
    flag: str
    gold: bool
    label: Any = None
    fields: dict[str, Any]
    shown_at: datetime
    submitted_at: datetime


class Page(Schema):
    count: int
    offset: int
    limit: int


class TaskPage(Page):
    items: list[TaskOut]


class GridTaskOut(Schema):
    """A task of the task grid: ``label`` as stored, ``label_words`` as the task page words it; ``agreement`` in
    percent (None before aggregation); ``image`` the address of its first image (None without one)."""
    id: int
    key: str
    class_name: str
    label: str
    label_words: str
    tie: bool
    aggregated: bool
    complete: bool
    agreement: int | None = None
    answers: int
    is_gold: bool
    image: str | None = None


class GridPage(Page):
    items: list[GridTaskOut]


class AnswerPage(Page):
    items: list[AnswerOut]


class BonusIn(Schema):
    cents: int
    reason: str = ""


class AssignmentOut(Schema):
    id: int
    status: str


class OutputOut(Schema):
    name: str
    title: str
    stage: str
    content_type: str
    size: int
    url: str


class RegistryModelOut(Schema):
    name: str
    title: str
    shared: bool
    architecture: str
    num_classes: int
    input_size: int


class RegistryDatasetOut(Schema):
    name: str
    title: str
    shared: bool
    builtin: bool
    num_classes: int


class KindOut(Schema):
    name: str
    title: str
    label_field: str
    defaults: dict[str, Any]
