"""The locked read that opens an answer's submit, without a study-wide lock; per-study constants cached.

An answer locks its own assignment row (one answer per assignment) and holds its study's row ``FOR SHARE``:
answers of one study share that lock, so they no longer wait for each other, while any change of the study
row (close, aggregate: an UPDATE, or the ``FOR UPDATE`` of ``services.studies``) waits for the answers in
flight, and an answer arriving during the change waits for it and then reads the new state (PostgreSQL,
"Row-level lock modes": ``FOR SHARE`` conflicts with ``FOR NO KEY UPDATE`` and ``FOR UPDATE``; ``FOR KEY
SHARE`` would not conflict with a plain UPDATE of the state). Slots are protected by the conditional
updates of the task counters (``services.slots``, ``_take_approval``), not by a lock on the task.

The study's other columns (kind, settings, time filters ...) and its kind's configuration are kept per
process, keyed by the row's id, ``xmin`` (the (sub)transaction that wrote the row version) and ``ctid`` (where
that version lies: two UPDATEs in one transaction keep ``xmin`` but write new tuples elsewhere), so an edited
study is read again. ``SALIENT_INTAKE_STUDY_LOCK`` (or SQLite, which has
no row locks) takes the earlier read instead: the assignment, its task and its study locked ``FOR UPDATE``
— the anchor of ``bench/intake.py``.
"""
from __future__ import annotations

import pickle
import threading
from collections import OrderedDict

from django.conf import settings
from django.db import connection

from annotation import selectors
from annotation.errors import Conflict
from annotation.models import Answer, Assignment, Study, Task, Worker

#: Study versions kept per process (a few per live study).
CACHE_SIZE = 256
_cache: OrderedDict[tuple[int, str], bytes] = OrderedDict()
_cache_lock = threading.Lock()


def _attnames(model) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


def _columns(model, alias: str) -> str:
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


_MODELS = ((Assignment, "a"), (Task, "t"), (Worker, "w"))
_NAMES = {model: _attnames(model) for model in (Assignment, Task, Worker, Study)}  # the columns each read loads
_LOCKED_READ = (
    f"SELECT {', '.join(_columns(m, alias) for m, alias in _MODELS)}, s.state, s.xmin::text || '/' || s.ctid::text "
    f"FROM {Assignment._meta.db_table} a "
    f"JOIN {Task._meta.db_table} t ON t.id = a.task_id "
    f"JOIN {Worker._meta.db_table} w ON w.id = a.worker_id "
    f"JOIN {Study._meta.db_table} s ON s.id = t.study_id "
    "WHERE a.id = %s FOR UPDATE OF a FOR SHARE OF s"
)


def assignment_locked(assignment_id: int) -> tuple[Assignment | None, dict]:
    """The assignment, its task, worker and study loaded, locked for the submit; and the study's kind
    configuration (``selectors.study_conf``). ``(None, {})`` when there is no such assignment.

    Call inside a transaction: the locks last until it ends.
    """
    if connection.vendor != "postgresql" or settings.SALIENT_INTAKE_STUDY_LOCK:
        return _assignment_locked_study_wide(assignment_id)
    with connection.cursor() as cursor:
        cursor.execute(_LOCKED_READ, [assignment_id])
        row = cursor.fetchone()
    if row is None:
        return None, {}
    objects, start = [], 0
    for model, _ in _MODELS:
        names = _NAMES[model]
        objects.append(model.from_db(connection.alias, names, row[start:start + len(names)]))
        start += len(names)
    assignment, task, worker = objects
    state, xmin = row[start], row[start + 1]
    study, conf = _study_version(task.study_id, xmin)
    study.state = state
    task.study = study
    assignment.task, assignment.worker = task, worker
    return assignment, conf


def _study_version(study_id: int, xmin: str) -> tuple[Study, dict]:
    """A fresh Study instance of this row version (read once per process) and its kind configuration."""
    key = (study_id, xmin)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if hit is None:
        names = _NAMES[Study]
        values = Study.objects.filter(pk=study_id).values_list(*names).get()  # the version share-locked above
        study = Study.from_db(connection.alias, names, values)
        # Kept pickled: each caller unpickles its own copy of the JSON columns and the configuration (whatever
        # it changes stays its own), several times faster than copy.deepcopy of the same values.
        hit = pickle.dumps((values, selectors.study_conf(study=study)), protocol=pickle.HIGHEST_PROTOCOL)
        with _cache_lock:
            _cache[key] = hit
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    values, conf = pickle.loads(hit)
    return Study.from_db(connection.alias, _NAMES[Study], values), conf


#: A counted answer's three writes in one statement (PostgreSQL, "Data-Modifying Statements in WITH": each
#: sub-statement runs once, to completion, whether or not the main query reads it): the task's approval counter
#: while a slot is left, then, only if it was taken, the assignment approved and the answer stored.
_APPROVE_AND_STORE = (
    f"WITH t AS (UPDATE {Task._meta.db_table} SET approved = approved + 1 "
    "WHERE id = %(task)s AND approved < wanted RETURNING id), "
    f"a AS (UPDATE {Assignment._meta.db_table} SET state = %(state)s, submitted_at = %(now)s, decided_at = %(now)s, "
    "updated_at = %(now)s WHERE id = %(assignment)s AND EXISTS (SELECT FROM t) RETURNING id) "
    f"INSERT INTO {Answer._meta.db_table} (assignment_id, task_id, worker_id, payload, shown_at, submitted_at, flag) "
    "SELECT %(assignment)s, %(task)s, %(worker)s, %(payload)s, %(shown)s, %(now)s, '' WHERE EXISTS (SELECT FROM t) "
    "RETURNING id"
)


def one_statement_writes() -> bool:
    """Whether :func:`answer_store_approved` serves this database (PostgreSQL, not the anchor's earlier path)."""
    return connection.vendor == "postgresql" and not settings.SALIENT_INTAKE_STUDY_LOCK


def answer_store_approved(*, assignment: Assignment, worker: Worker, cleaned: dict, shown, now) -> Answer:
    """Store an unflagged answer and approve it (the task's counter taken) in one round trip; a full task or a
    second answer raises :class:`Conflict` (the caller's transaction, rolled back, keeps nothing). The same
    writes as ``services.assignments._record_answer``'s ORM path; ``assignment`` is updated in memory."""
    from django.db import IntegrityError

    params = {"task": assignment.task_id, "assignment": assignment.pk, "worker": worker.pk, "shown": shown,
              "now": now, "state": Assignment.State.APPROVED,
              "payload": Answer._meta.get_field("payload").get_db_prep_save(cleaned, connection)}
    try:
        with connection.cursor() as cursor:
            cursor.execute(_APPROVE_AND_STORE, params)
            row = cursor.fetchone()
    except IntegrityError as exc:
        raise Conflict("this assignment already has an answer") from exc
    if row is None:
        raise Conflict("this task already has all the approved answers it wants")
    assignment.state, assignment.submitted_at, assignment.decided_at = Assignment.State.APPROVED, now, now
    assignment.updated_at = now
    answer = Answer(id=row[0], assignment=assignment, task=assignment.task, worker=worker, payload=cleaned,
                    shown_at=shown, submitted_at=now, flag="")
    answer._state.adding, answer._state.db = False, connection.alias
    return answer


def _assignment_locked_study_wide(assignment_id: int) -> tuple[Assignment | None, dict]:
    """The earlier read: assignment, task and study rows locked FOR UPDATE, so a study's answers queue."""
    assignment = (Assignment.objects.select_for_update(of=("self", "task", "task__study"))
                  .select_related("task__study", "worker").filter(pk=assignment_id).first())
    if assignment is None:
        return None, {}
    return assignment, selectors.study_conf(study=assignment.task.study)
