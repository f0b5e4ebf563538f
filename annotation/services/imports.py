"""The bulk write of imported answers: tasks, workers, assignments and answers in a fixed number of queries.

Only the checked rows of :mod:`annotation.importer` come here; a study made here is closed from the start.
"""
from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction

from annotation.errors import ApplicationError
from annotation.models import Answer, Assignment, Study, Task, Worker
from annotation.services.bulk import bulk_insert
from annotation.services.people import researcher_create
from annotation.task_kinds import get_task_kind

IMPORT_BACKEND = Worker.Backend.IMPORTED
BATCH = 5000
#: Imports at least this large refresh the planner statistics afterwards.
ANALYZE_ROWS = 5000


def _analyze() -> None:
    """Refresh PostgreSQL's statistics after a large import: without them its planner joins the new rows
    with nested loops, and the dashboard's counts take seconds instead of milliseconds (bench/dashboard_scale.py)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE annotation_task, annotation_assignment, annotation_answer, annotation_worker")


def imported_answers_write(*, study: Study | None, rows: list[tuple], owner: str, name: str, kind: str,
                           task_key: Sequence[str], key_values: list[tuple], now) -> dict[str, int]:
    """Insert tasks, workers, assignments and answers in bulk, in one transaction (the rows are checked by
    :func:`annotation.importer.answers_import`): ``rows`` are ``(task key, worker id, answer, shown_at,
    submitted_at, assignment id, HIT id)``; ``study`` None makes study ``name`` of ``owner``, closed."""
    with transaction.atomic():
        summary = _write(study=study, rows=rows, owner=owner, name=name, kind=kind, task_key=task_key,
                         key_values=key_values, now=now)
    if len(rows) >= ANALYZE_ROWS:
        _analyze()
    return summary


def _write(*, study, rows, owner, name, kind, task_key, key_values, now) -> dict[str, int]:
    task_kind = get_task_kind(kind)
    if study is None:
        user = researcher_create(username=owner, password=None)
        study = Study.objects.create(owner=user, name=name, kind=kind, state=Study.State.CLOSED,
                                     settings=task_kind.default_settings())
    per_task: dict[str, int] = {}
    first_row: dict[str, int] = {}
    for i, row in enumerate(rows):
        per_task[row[0]] = per_task.get(row[0], 0) + 1
        first_row.setdefault(row[0], i)
    tasks = {t.key: t for t in Task.objects.filter(study=study, key__in=list(per_task))}
    existing = set(Assignment.objects.filter(task__study=study).values_list("task__key", "worker__external_id"))
    clash = next((r for r in rows if (r[0], r[1]) in existing), None)
    if clash is not None:
        raise ApplicationError(f"worker {clash[1]!r} already has an answer to task {clash[0]!r} "
                               f"in study {name!r}; nothing was imported")
    key_columns = [dict(zip(task_key, key_values[first_row[k]])) for k in per_task]
    new = [Task(study=study, key=key, payload={"key_columns": cols, "imported": True}, wanted=per_task[key],
                filled=per_task[key], approved=per_task[key], external_id=rows[first_row[key]][6])
           for key, cols in zip(per_task, key_columns) if key not in tasks]
    for task in Task.objects.bulk_create(new, batch_size=BATCH):
        tasks[task.key] = task
    new_keys = {t.key for t in new}
    old = [tasks[k] for k in per_task if k not in new_keys]
    for task in old:
        count = per_task[task.key]
        task.wanted, task.filled, task.approved = (max(task.wanted, task.approved + count), task.filled + count,
                                                   task.approved + count)
    Task.objects.bulk_update(old, ["wanted", "filled", "approved"], batch_size=BATCH)

    ids = {r[1] for r in rows}
    workers = {w.external_id: w for w in Worker.objects.filter(backend=IMPORT_BACKEND, external_id__in=ids)}
    Worker.objects.bulk_create([Worker(backend=IMPORT_BACKEND, external_id=w) for w in ids - set(workers)],
                               batch_size=BATCH, ignore_conflicts=True)
    workers = {w.external_id: w for w in Worker.objects.filter(backend=IMPORT_BACKEND, external_id__in=ids)}
    task_ids = [tasks[r[0]].pk for r in rows]
    worker_ids = [workers[r[1]].pk for r in rows]
    assignment_ids = bulk_insert(Assignment, {
        "task_id": task_ids, "worker_id": worker_ids, "state": Assignment.State.APPROVED,
        "expires_at": [r[4] for r in rows], "shown_at": [r[3] for r in rows], "submitted_at": [r[4] for r in rows],
        "decided_at": now, "external_id": [r[5] for r in rows]}, len(rows), ids=True, now=now)
    bulk_insert(Answer, {"assignment_id": assignment_ids, "task_id": task_ids, "worker_id": worker_ids,
                         "payload": [r[2] for r in rows], "shown_at": [r[3] for r in rows],
                         "submitted_at": [r[4] for r in rows]}, len(rows), now=now)
    Study.objects.filter(pk=study.pk).update(
        workers_per_task=max(study.workers_per_task, max(per_task.values(), default=1))
    )
    return {"study": study.pk, "tasks_created": len(new), "workers": len(ids)}
