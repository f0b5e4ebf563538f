"""Importing answers collected elsewhere into a study, all rows or none.

Every row is checked first (columns, answer values through the kind's schema, duplicates); only
then are tasks, workers, assignments and answers written, in one transaction.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pandas as pd
from django.db import transaction
from django.utils import timezone

from annotation import selectors
from annotation.errors import AnswerInvalid, ApplicationError
from annotation.models import Answer, Assignment, Study, Task, Worker
from annotation.services import researcher_create
from annotation.task_kinds import get_task_kind

IMPORT_BACKEND = Worker.Backend.IMPORTED
KEY_SEPARATOR = "|"


def _parse_time(value, column: str, row: int) -> dt.datetime:
    stamp = pd.to_datetime(value, utc=True, errors="coerce")
    if pd.isna(stamp):
        raise ApplicationError(f"row {row}: column {column!r} holds {value!r}, which is not a date and time")
    return stamp.to_pydatetime()


def answers_import(
    *, table: pd.DataFrame, kind: str, name: str, task_key: Sequence[str], worker: str, fields: Mapping[str, str],
    owner: str = "importer", shown_at: str | None = None, submitted_at: str | None = None,
) -> dict[str, int]:
    """Create (or extend) study ``name`` from ``table``; returns counts of what was created."""
    task_kind = get_task_kind(kind)
    wanted_columns = [*task_key, worker, *fields.values(), *(c for c in (shown_at, submitted_at) if c)]
    missing = [c for c in wanted_columns if c not in table.columns]
    if missing:
        raise ApplicationError(
            f"unknown column(s) {', '.join(missing)}; the file has {', '.join(map(str, table.columns))}"
        )
    if not task_key:
        raise ApplicationError("give at least one --task-key column")

    study = Study.objects.filter(owner__username=owner, name=name).first()
    if study is not None and study.kind != kind:
        raise ApplicationError(f"study {name!r} is a {study.kind} study, not {kind}")
    if study is not None and study.state not in (Study.State.CLOSED, Study.State.AGGREGATED):
        raise ApplicationError(f"study {name!r} is {study.state}; answers are imported only into closed studies")
    conf = selectors.study_conf(study=study) if study else {**task_kind.default_settings(), "workers_per_task": 1}
    schema_names = {f.name for f in task_kind.answer_fields(conf)}
    unknown_fields = set(fields) - schema_names
    if unknown_fields:
        raise ApplicationError(
            f"unknown answer field(s) {', '.join(sorted(unknown_fields))} for {kind}; "
            f"its fields are {', '.join(sorted(schema_names))}"
        )

    now = timezone.now()
    rows = []
    seen: set[tuple[str, str]] = set()
    for number, record in enumerate(table.to_dict(orient="records"), start=2):  # row 1 is the header
        key_values = {c: str(record[c]) for c in task_key}
        key = KEY_SEPARATOR.join(key_values[c] for c in task_key)
        worker_id = str(record[worker]).strip()
        if not worker_id or worker_id == "nan":
            raise ApplicationError(f"row {number}: the worker column {worker!r} is empty")
        if (key, worker_id) in seen:
            raise ApplicationError(f"row {number}: worker {worker_id!r} answered task {key!r} twice")
        seen.add((key, worker_id))
        payload = {f: (None if pd.isna(record[c]) else record[c]) for f, c in fields.items()}
        payload = {f: (str(v) if f != "confidence" and v is not None else v) for f, v in payload.items()}
        try:
            cleaned = task_kind.validate_answer(payload, conf)
        except AnswerInvalid as exc:
            detail = "; ".join(f"{fields.get(f, f)} ({f}): {m}" for f, m in exc.errors.items())
            raise ApplicationError(f"row {number}: {detail}") from exc
        rows.append({
            "key": key, "key_values": key_values, "worker": worker_id, "answer": cleaned,
            "shown_at": _parse_time(record[shown_at], shown_at, number) if shown_at else now,
            "submitted_at": _parse_time(record[submitted_at], submitted_at, number) if submitted_at else now,
        })

    with transaction.atomic():
        if study is None:
            user = researcher_create(username=owner, password=None)
            study = Study.objects.create(owner=user, name=name, kind=kind, state=Study.State.CLOSED,
                                         settings=task_kind.default_settings())
        per_task = pd.Series([r["key"] for r in rows]).value_counts().to_dict() if rows else {}
        tasks: dict[str, Task] = {}
        created_tasks = 0
        for key in per_task:
            values = next(r["key_values"] for r in rows if r["key"] == key)
            task, created = Task.objects.get_or_create(
                study=study, key=key, defaults={"payload": {"key_columns": values, "imported": True}, "wanted": 0},
            )
            created_tasks += created
            tasks[key] = task
        workers: dict[str, Worker] = {}
        for worker_id in {r["worker"] for r in rows}:
            workers[worker_id], _ = Worker.objects.get_or_create(backend=IMPORT_BACKEND, external_id=worker_id)
        existing = set(Assignment.objects.filter(task__study=study).values_list("task__key", "worker__external_id"))
        clash = next((r for r in rows if (r["key"], r["worker"]) in existing), None)
        if clash is not None:
            raise ApplicationError(f"worker {clash['worker']!r} already has an answer to task {clash['key']!r} "
                                   f"in study {name!r}; nothing was imported")
        for key, count in per_task.items():
            task = tasks[key]
            Task.objects.filter(pk=task.pk).update(
                wanted=max(task.wanted, task.approved + count), filled=task.filled + count,
                approved=task.approved + count,
            )
        for r in rows:
            assignment = Assignment.objects.create(
                task=tasks[r["key"]], worker=workers[r["worker"]], state=Assignment.State.APPROVED,
                expires_at=r["submitted_at"], shown_at=r["shown_at"], submitted_at=r["submitted_at"],
                decided_at=now,
            )
            Answer.objects.create(assignment=assignment, task=tasks[r["key"]], worker=workers[r["worker"]],
                                  payload=r["answer"], shown_at=r["shown_at"], submitted_at=r["submitted_at"])
        Study.objects.filter(pk=study.pk).update(
            workers_per_task=max(study.workers_per_task, max(per_task.values(), default=1))
        )
    return {"study": study.pk, "rows": len(rows), "tasks_created": created_tasks, "workers": len(workers)}


def labels_export_table(*, study: Study) -> pd.DataFrame:
    """One row per task: its key columns, ``label`` and a count column per answer value."""
    from annotation.exports import study_labels_table

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
