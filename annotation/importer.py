"""Importing answers collected elsewhere into a study, all rows or none; and the labels table it exports.

Every row is checked first (columns, answer values through the kind's schema, duplicates); a bad row
names its row number (the header is row 1), column and value, and nothing is written. Then
:func:`annotation.services.imports.imported_answers_write` writes tasks, workers, assignments and answers in
one transaction with bulk inserts (a fixed number of queries, whatever the number of rows).

Imported answers are held to the kind's schema but not to live-HIT rules: a free-text answer shorter
than the study's minimum is kept and counted (``short_answers``). Whole numbers written as ``4.0`` are
read as ``4``. With :func:`mturk_mapping`, an MTurk batch-results file is read as downloaded:
``Rejected`` assignments are skipped and counted, ``AcceptTime``/``SubmitTime`` become the times.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from django.utils import timezone

from annotation import selectors
from annotation.errors import AnswerInvalid, ApplicationError
from annotation.models import Study
from annotation.selectors.tables import study_labels_table
from annotation.services.imports import imported_answers_write
from annotation.task_kinds import get_task_kind
from annotation.task_kinds.fields import IntField, TextField

KEY_SEPARATOR = "|"

#: The fixed columns of an MTurk batch-results CSV (answers are ``Answer.<field>``, inputs ``Input.<name>``).
MTURK = {"worker": "WorkerId", "assignment": "AssignmentId", "hit": "HITId", "status": "AssignmentStatus",
         "shown_at": "AcceptTime", "submitted_at": "SubmitTime"}
MTURK_SKIPPED = {"Rejected"}
#: MTurk writes times as ``Wed Nov 29 06:23:44 PST 2026``; the zone is one of these abbreviations.
MTURK_ZONES = {"UTC": 0, "GMT": 0, "PST": -8, "PDT": -7, "MST": -7, "MDT": -6, "CST": -6, "CDT": -5,
               "EST": -5, "EDT": -4}
MTURK_TIME = re.compile(r"^\w{3} (\w{3} \d{1,2} \d{2}:\d{2}:\d{2}) (\w{3,4}) (\d{4})$")


def mturk_mapping(columns: Sequence[str], *, kind: str, task_key: Sequence[str] = (),
                  fields: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The :func:`answers_import` arguments for an MTurk batch file: the worker, assignment, status and
    time columns; the task key (given, else every ``Input.*`` column, else ``HITId``); the answer fields
    (given, else each field ``f`` of the kind read from ``Answer.f``)."""
    missing = [c for c in MTURK.values() if c not in columns]
    if missing:
        raise ApplicationError(f"not an MTurk batch-results file: no column(s) {', '.join(missing)}")
    task_kind = get_task_kind(kind)
    if not fields:
        schema = task_kind.answer_fields({**task_kind.default_settings(), "workers_per_task": 1})
        fields = {f.name: f"Answer.{f.name}" for f in schema if f"Answer.{f.name}" in columns}
        if not fields:
            answers = [c for c in columns if c.startswith("Answer.")]
            raise ApplicationError(f"no Answer.<field> column for the {kind} fields "
                                   f"{', '.join(f.name for f in schema)}; the file has {', '.join(answers) or 'none'}"
                                   "; map them with --field FIELD=COLUMN")
    inputs = [c for c in columns if c.startswith("Input.")]
    return {"task_key": list(task_key) or inputs or [MTURK["hit"]], "worker": MTURK["worker"],
            "fields": dict(fields), "shown_at": MTURK["shown_at"], "submitted_at": MTURK["submitted_at"],
            "status": MTURK["status"], "assignment": MTURK["assignment"], "hit": MTURK["hit"],
            "time_format": "batch_results"}


def _mturk_times(values: pd.Series) -> pd.Series:
    parts = values.astype("string").str.strip().str.extract(MTURK_TIME)
    offsets = parts[1].map(MTURK_ZONES)
    stamps = pd.to_datetime(parts[0] + " " + parts[2], format="%b %d %H:%M:%S %Y", errors="coerce")
    return (stamps - pd.to_timedelta(offsets, unit="h")).dt.tz_localize("UTC")


def _times(table: pd.DataFrame, column: str, time_format: str) -> list:
    values = table[column]
    stamps = (_mturk_times(values) if time_format == "batch_results"
              else pd.to_datetime(values, utc=True, errors="coerce", format="mixed"))
    bad = stamps.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise ApplicationError(f"row {row + 2}: column {column!r} holds {values.iloc[row]!r}, "
                               "which is not a date and time")
    return list(stamps.dt.to_pydatetime())


def _raw_value(field, raw):
    """A CSV cell as the field expects it: ``None`` when empty, ``4`` for ``4.0`` on an integer scale."""
    if raw is None or (isinstance(raw, float) and pd.isna(raw)):
        return None
    if isinstance(field, IntField) and isinstance(raw, str):
        try:
            number = float(raw)
        except ValueError:
            return raw
        return int(number) if number.is_integer() else raw
    return raw if isinstance(raw, str) else str(raw)


def _cell(field_values: Mapping[str, list], field: str, i: int):
    value = field_values[field][i] if field in field_values else None
    return None if isinstance(value, float) and pd.isna(value) else value


def _relaxed(conf: Mapping[str, Any]) -> dict[str, Any]:
    """The study's settings without its live-HIT minimum lengths (``*_min_length`` settings set to 0)."""
    return {k: (0 if k.endswith("_min_length") else v) for k, v in conf.items()}


def _check_columns(table: pd.DataFrame, wanted: Sequence[str]) -> None:
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise ApplicationError(
            f"unknown column(s) {', '.join(missing)}; the file has {', '.join(map(str, table.columns))}"
        )


def _target_study(*, owner: str, name: str, kind: str) -> Study | None:
    study = Study.objects.filter(owner__username=owner, name=name).first()
    if study is not None and study.kind != kind:
        raise ApplicationError(f"study {name!r} is a {study.kind} study, not {kind}")
    if study is not None and study.state not in (Study.State.CLOSED, Study.State.AGGREGATED):
        raise ApplicationError(f"study {name!r} is {study.state}; answers are imported only into closed studies")
    return study


def answers_import(
    *, table: pd.DataFrame, kind: str, name: str, task_key: Sequence[str], worker: str, fields: Mapping[str, str],
    owner: str = "importer", shown_at: str | None = None, submitted_at: str | None = None,
    status: str | None = None, assignment: str | None = None, hit: str | None = None, time_format: str = "any",
) -> dict[str, int]:
    """Create (or extend) study ``name`` from ``table``; returns counts of what was created and skipped.

    ``status`` names a column of crowd-site assignment states (rows whose state is ``Rejected`` are skipped);
    ``assignment`` and ``hit`` columns are kept as the assignments' and new tasks' external ids.
    """
    task_kind = get_task_kind(kind)
    if not task_key:
        raise ApplicationError("give at least one --task-key column")
    _check_columns(table, [*task_key, worker, *fields.values(),
                           *(c for c in (shown_at, submitted_at, status, assignment, hit) if c)])
    study = _target_study(owner=owner, name=name, kind=kind)
    conf = selectors.study_conf(study=study) if study else {**task_kind.default_settings(), "workers_per_task": 1}
    schema = {f.name: f for f in task_kind.answer_fields(conf)}
    unknown_fields = set(fields) - set(schema)
    if unknown_fields:
        raise ApplicationError(
            f"unknown answer field(s) {', '.join(sorted(unknown_fields))} for {kind}; "
            f"its fields are {', '.join(sorted(schema))}"
        )

    skipped = table[status].isin(MTURK_SKIPPED) if status else pd.Series(False, index=table.index)
    rows_kept = table.index[~skipped.to_numpy()]
    numbers = [int(i) + 2 for i in rows_kept]  # row 1 is the header
    kept = table.loc[rows_kept]
    now = timezone.now()
    shown = _times(kept, shown_at, time_format) if shown_at else [now] * len(kept)
    submitted = _times(kept, submitted_at, time_format) if submitted_at else [now] * len(kept)
    minimums = {f: field.min_length for f, field in schema.items()
                if f in fields and isinstance(field, TextField) and field.min_length}
    relaxed = _relaxed(conf)

    key_parts = [kept[c].astype("string").fillna("").tolist() for c in task_key]
    keys = [KEY_SEPARATOR.join(p) for p in zip(*key_parts)]
    workers_col = kept[worker].astype("string").fillna("").str.strip().tolist()
    field_values = {f: kept[c].tolist() for f, c in fields.items()}
    extra = {c: kept[c].fillna("").astype(str).tolist() if c else None for c in (assignment, hit)}
    rows, seen, short = [], set(), 0
    checked: dict[tuple, dict] = {}  # the kind's check is a function of the answer: each distinct one once
    for i, (number, key, worker_id) in enumerate(zip(numbers, keys, workers_col)):
        if not worker_id:
            raise ApplicationError(f"row {number}: the worker column {worker!r} is empty")
        if (key, worker_id) in seen:
            raise ApplicationError(f"row {number}: worker {worker_id!r} answered task {key!r} twice")
        seen.add((key, worker_id))
        payload = {f: _raw_value(schema[f], values[i]) for f, values in field_values.items()}
        answer_key = tuple(payload.values())
        try:
            cleaned = checked.get(answer_key)
            if cleaned is None:
                cleaned = checked[answer_key] = task_kind.validate_answer(payload, relaxed)
        except AnswerInvalid as exc:
            detail = "; ".join(f"column {fields[f]!r} ({f}) holds {_cell(field_values, f, i)!r}: {m}" if f in fields
                               else f"field {f!r} has no column (map it with --field {f}=COLUMN): {m}"
                               for f, m in exc.errors.items())
            raise ApplicationError(f"row {number}: {detail}") from exc
        short += any(0 < len(cleaned.get(f) or "") < n for f, n in minimums.items())
        rows.append((key, worker_id, cleaned, shown[i], submitted[i],
                     extra[assignment][i] if assignment else "", extra[hit][i] if hit else ""))

    summary = imported_answers_write(study=study, rows=rows, owner=owner, name=name, kind=kind, task_key=task_key,
                                     key_values=list(zip(*key_parts)), now=now)
    return {**summary, "rows": len(rows), "skipped_rejected": int(skipped.sum()), "short_answers": short}


def labels_export_table(*, study: Study) -> pd.DataFrame:
    """One row per task: its key columns, ``label`` and a count column per answer value."""

    labels = study_labels_table(study=study)
    tasks = {t.pk: t for t in study.tasks.all()}
    key_columns: list[str] = []
    for task in tasks.values():
        for column in task.payload.get("key_columns", {}):
            if column not in key_columns:
                key_columns.append(column)
    rows = []
    for _, row in labels.iterrows():
        task = tasks[row["task"]]
        keys = task.payload.get("key_columns") or {"task_key": task.key}
        rows.append({**{c: keys.get(c) for c in (key_columns or ["task_key"])}, "label": row["label"],
                     **{c: row[c] for c in labels.columns if c.startswith("count_")}})
    return pd.DataFrame(rows)
