"""The task grid (Label Studio's data manager for a study): tasks filtered by label, tie, agreement, gold and worker,
sorted and paged in the database; a task's images and every answer; labels in the words a researcher reads."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.http import urlencode
from django.db.models import Avg, Count, F, Q, QuerySet

from annotation.models import Answer, Study, Task
from annotation.selectors.studies import COUNTED, FilterError, _order, as_id, study_conf
from annotation.task_kinds import get_task_kind

#: An artifact's name as a task's payload holds it (``<sha256>.<ext>``, see ``Artifact.name``).
ARTIFACT_NAME = re.compile(r"^[0-9a-f]{64}\.(png|jpg|jpeg|webp)$")

#: Sort orders of the grid; a task without a result (not aggregated) sorts last by agreement.
GRID_ORDERS = {
    "key": ("key", "id"), "-key": ("-key", "-id"),
    "agreement": (F("result__agreement").asc(nulls_last=True), "id"),
    "-agreement": (F("result__agreement").desc(nulls_last=True), "id"),
    "answers": ("received", "id"), "-answers": ("-received", "id"),
}
#: What each order is called on the page.
GRID_ORDER_WORDS = {"key": "key A→Z", "-key": "key Z→A", "agreement": "agreement, lowest first",
                    "-agreement": "agreement, highest first", "answers": "answers, fewest first",
                    "-answers": "answers, most first"}
YES_NO = {"yes": True, "no": False, "": None}
#: Payload fields the grid filters on exactly, so that a row of a results table (a model, a condition, a cluster, a
#: selector's pick) opens its own tasks; with the words the grid shows for each. A list field (``roles``: the
#: [selector, role] pairs that picked an image) matches when one of its items does, written ``selector:role``.
PAYLOAD_FILTERS = {"model": "Model", "variant": "Variant", "split": "Images from", "protocol": "Protocol",
                   "condition": "Condition", "selector": "Selector", "roles": "Picked as", "k": "k",
                   "cluster": "Cluster", "level": "Model level", "rank": "Feature rank", "feature": "Feature"}


class LabelWords:
    """A study's label values in the words of its task page (``TaskKind.label_words``); nothing (None, NaN, "")
    is blank, an unknown value shows as stored. One instance per page or export, used for every label on it."""

    do_not_call_in_templates = True  # a template passes it to the ``label_word`` filter

    def __init__(self, words: Mapping[str, str]) -> None:
        self.words = dict(words)

    @classmethod
    def of(cls, study: Study) -> LabelWords:
        return cls(get_task_kind(study.kind).label_words(study_conf(study=study)))

    def __call__(self, value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) in ("", "nan", "None"):
            return ""
        return self.words.get(str(value), str(value))


def task_class_name(payload: Mapping[str, Any]) -> str:
    """The class a task shows (benchmark kinds put ``class_name`` in the payload), or ""."""
    return str(payload.get("class_name") or "")


def task_images(payload: Any) -> list[str]:
    """Every artifact image a task's payload names, in the payload's order, each once."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if ARTIFACT_NAME.match(value) and value not in found:
                found.append(value)
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(payload)
    return found


@dataclass(frozen=True)
class GridFilters:
    """The grid's filters as a request gives them; agreement bounds are percentages (0-100)."""

    label: str = ""
    key: str = ""
    class_name: str = ""
    tie: bool | None = None
    gold: bool | None = None
    worker: str = ""
    agreement_min: float | None = None
    agreement_max: float | None = None
    order: str = "key"
    fields: tuple[tuple[str, str], ...] = ()  # (payload field, value) pairs of :data:`PAYLOAD_FILTERS`

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> GridFilters:
        """From a query string (page or API); a value that names nothing raises :class:`FilterError`."""
        def flag(name: str) -> bool | None:
            raw = str(data.get(name) or "").strip().lower()
            if raw in ("true", "false"):
                raw = "yes" if raw == "true" else "no"
            if raw not in YES_NO:
                raise FilterError(f"{name} is yes, no or empty, not {raw!r}", name)
            return YES_NO[raw]

        def percent(name: str) -> float | None:
            raw = str(data.get(name) or "").strip().rstrip("%")
            if not raw:
                return None
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            if not 0 <= value <= 100:
                raise FilterError(f"{name} is a percentage from 0 to 100, not {raw!r}", name)
            return value

        order = str(data.get("order") or "key")
        _order(GRID_ORDERS, order)
        low, high = percent("agreement_min"), percent("agreement_max")
        if low is not None and high is not None and low > high:
            raise FilterError(f"agreement_min ({low:g} %) is above agreement_max ({high:g} %)", "agreement_min")
        return cls(label=str(data.get("label") or "").strip(), key=str(data.get("key") or "").strip(),
                   class_name=str(data.get("class_name") or "").strip(), tie=flag("tie"), gold=flag("gold"),
                   worker=str(data.get("worker") or "").strip(), agreement_min=low, agreement_max=high, order=order,
                   fields=tuple((name, str(data.get(name)).strip()) for name in PAYLOAD_FILTERS
                                if str(data.get(name) or "").strip()))

    def query(self, only_set: bool = False) -> dict[str, str]:
        """The filters as query-string values (for links that keep them); ``only_set``: those set, the default
        order left out."""
        word = {True: "yes", False: "no", None: ""}
        values = {"label": self.label, "key": self.key, "class_name": self.class_name, "tie": word[self.tie],
                "gold": word[self.gold], "worker": self.worker,
                "agreement_min": "" if self.agreement_min is None else f"{self.agreement_min:g}",
                "agreement_max": "" if self.agreement_max is None else f"{self.agreement_max:g}",
                "order": self.order, **dict(self.fields)}
        if only_set:
            return {k: v for k, v in values.items() if v and not (k == "order" and v == "key")}
        return values

    def query_string(self) -> str:
        """The filters set, as a query string ("" when none is)."""
        return urlencode(self.query(only_set=True))


def task_grid(*, study: Study, filters: GridFilters) -> QuerySet[Task]:
    """The study's tasks that pass ``filters`` (``key`` and ``class_name`` match exactly), each with ``received``
    (answers counted) and its ``result``, sorted by ``filters.order`` (:data:`GRID_ORDERS`); filtering, sorting and
    paging all run in the database."""
    tasks = study.tasks.select_related("result").annotate(
        received=Count("assignments", filter=Q(assignments__state__in=COUNTED)))
    if filters.label:
        tasks = tasks.filter(result__label=filters.label)
    if filters.key:
        tasks = tasks.filter(key=filters.key)
    if filters.class_name:
        tasks = tasks.filter(payload__class_name=filters.class_name)
    if filters.tie is not None:
        tasks = tasks.filter(result__tie=filters.tie)
    if filters.gold is not None:
        tasks = tasks.filter(is_gold=filters.gold)
    if filters.agreement_min is not None:
        tasks = tasks.filter(result__agreement__gte=filters.agreement_min / 100 - 1e-9)
    if filters.agreement_max is not None:
        tasks = tasks.filter(result__agreement__lte=filters.agreement_max / 100 + 1e-9)
    if filters.worker:
        by = Q(worker__user__username=filters.worker) | Q(worker__external_id=filters.worker)
        if as_id(filters.worker):
            by |= Q(worker_id=as_id(filters.worker))
        tasks = tasks.filter(pk__in=Answer.objects.filter(by, task__study=study).values("task_id"))
    if filters.fields:
        tasks = tasks.filter(pk__in=[pk for pk, payload in study.tasks.values_list("pk", "payload")
                                     if all(payload_matches(payload, name, value) for name, value in filters.fields)])
    return tasks.order_by(*_order(GRID_ORDERS, filters.order))


def _field_word(value: Any) -> str:
    """A payload value as a query string writes it: a list item ``[selector, role]`` as ``selector:role``."""
    return ":".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def payload_matches(payload: Mapping[str, Any], name: str, value: str) -> bool:
    """Whether the payload's ``name`` is ``value`` (compared as text: ``3`` matches 3), or, for a list, holds it.
    Matched in Python: the same on SQLite and PostgreSQL, list fields included (SQLite has no JSON containment)."""
    held = payload.get(name)
    if isinstance(held, list):
        return any(_field_word(item) == value for item in held)
    return held is not None and _field_word(held) == value


def _result(task: Task):
    try:
        return task.result
    except Task.result.RelatedObjectDoesNotExist:
        return None


def task_grid_row(task: Task, words: LabelWords) -> dict[str, Any]:
    """One tile of the grid: key and class, thumbnail, label in words, tie, agreement, answers, gold."""
    result = _result(task)
    images = task_images(task.payload)
    return {
        "id": task.pk, "key": task.key, "class_name": task_class_name(task.payload),
        "thumbnail": images[0] if images else "", "n_images": len(images), "is_gold": task.is_gold,
        "label": result.label if result else "", "label_words": words(result.label) if result else "",
        "tie": bool(result and result.tie), "aggregated": result is not None,
        "complete": bool(result and result.complete),
        "agreement": None if result is None or result.agreement is None else round(100 * result.agreement),
        "answers": getattr(task, "received", None),
        "ds_label_words": words(result.ds_label) if result else "",
    }


def task_answer_rows(*, task: Task, words: LabelWords) -> list[dict[str, Any]]:
    """Every answer to ``task`` (flagged ones too), oldest first: worker, label in words, reason, confidence,
    seconds taken, flag, the assignment's status and whether the worker was excluded from the study."""
    label_field = get_task_kind(task.study.kind).label_field
    excluded = set(task.study.excluded_workers.values_list("pk", flat=True))
    rows = []
    for a in (Answer.objects.filter(task=task).select_related("worker__user", "assignment").order_by("submitted_at",
                                                                                                       "id")):
        payload = a.payload or {}
        rows.append({
            "id": a.pk, "worker": str(a.worker), "worker_id": a.worker_id, "label": payload.get(label_field),
            "label_words": words(payload.get(label_field)), "reason": payload.get("reason") or "",
            "confidence": payload.get("confidence"),
            "seconds": round((a.submitted_at - a.shown_at).total_seconds(), 1),
            "flag": a.flag, "flag_words": a.get_flag_display() if a.flag else "",
            "status": a.assignment.state, "submitted_at": a.submitted_at, "excluded": a.worker_id in excluded,
            "other_fields": {k: v for k, v in payload.items() if k not in (label_field, "reason", "confidence")},
        })
    return rows


def task_neighbours(*, tasks: QuerySet[Task], task: Task) -> tuple[int | None, int | None]:
    """The grid's previous and next task around ``task`` under the same filters and order (None at an end)."""
    ids = list(tasks.values_list("id", flat=True))
    if task.pk not in ids:
        return None, None
    at = ids.index(task.pk)
    return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)


def study_label_values(*, study: Study) -> list[tuple[str, str]]:
    """The labels the study's results hold, with their words, for the grid's label filter."""
    words = LabelWords.of(study)
    values = study.results.exclude(label="").values_list("label", flat=True).distinct().order_by("label")
    return [(v, words(v)) for v in values]


def study_label_summary(*, study: Study) -> list[dict[str, Any]]:
    """One row per label of the last aggregation (ties and tasks without a label last): the label in words, its
    tasks, their mean agreement in percent and the grid's query string that lists them ("" when none does)."""
    words = LabelWords.of(study)
    rows = []
    grouped = study.results.values("label", "tie").annotate(tasks=Count("pk"), agreement=Avg("agreement"))
    for g in sorted(grouped, key=lambda g: (g["label"] == "", g["tie"] is False, g["label"])):
        if g["label"]:
            word, query = words(g["label"]), {"label": g["label"]}
        elif g["tie"]:
            word, query = "tie (no label)", {"tie": "yes"}
        else:
            word, query = "no label yet (too few answers)", {}
        rows.append({"label": g["label"], "word": word, "tasks": g["tasks"], "query": urlencode(query),
                     "agreement": None if g["agreement"] is None else round(100 * g["agreement"])})
    return rows
