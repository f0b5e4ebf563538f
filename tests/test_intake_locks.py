"""The submit's locks on PostgreSQL (``annotation.services.intake``): answers of one study do not wait for each
other, a state change of the study waits for the answers in flight, and an answer arriving during a change
waits for it and is refused. Each scenario holds one transaction open in a thread and watches, in
``pg_stat_activity``, whether the other one waits for a lock (no timing involved)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection, connections, transaction

from annotation import services
from annotation.errors import Conflict
from annotation.models import Answer, Study
from annotation.services.intake import _cache
from annotation.states import study_transition
from annotation.tokens import assignment_token

pytestmark = [pytest.mark.postgres]
ANSWER = {"choice": "person", "confidence": 3}


@pytest.fixture
def postgres_only(transactional_db):
    if connection.vendor != "postgresql":
        pytest.fail("the intake lock tests need PostgreSQL: run them with DATABASE_URL (make test does)")


class Session(threading.Thread):
    """Runs ``work`` in its own database session; ``hold`` keeps its transaction open until ``release()``."""

    def __init__(self, work: Callable[[], object], *, hold: bool = False):
        super().__init__(daemon=True)
        self.work, self.hold = work, hold
        self.pid: int | None = None
        self.result: object = None
        self.error: BaseException | None = None
        self.started_work = threading.Event()
        self.worked = threading.Event()
        self._release = threading.Event()

    def run(self) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.pid = cursor.fetchone()[0]
            with transaction.atomic():
                self.started_work.set()
                try:
                    self.result = self.work()
                except BaseException as exc:  # reported to the test
                    self.error = exc
                self.worked.set()
                if self.hold:
                    self._release.wait(timeout=60)
        finally:
            self.worked.set()
            connections.close_all()

    def release(self) -> None:
        self._release.set()
        self.join(timeout=60)


def _waits_for_lock(session: Session, timeout: float = 30.0) -> bool:
    """True once ``session`` waits for a lock; False if it finished its work without waiting."""
    session.started_work.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if session.worked.is_set():
            return False
        with connection.cursor() as cursor:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [session.pid])
            row = cursor.fetchone()
        if row and row[0] == "Lock":
            return True
        time.sleep(0.02)
    raise AssertionError("the session neither finished nor waited for a lock")


def _claimed(study, make_worker, n: int):
    out = []
    for _ in range(n):
        worker = make_worker()
        assignment = services.assignment_claim_next(worker=worker, study=study)
        out.append((assignment.pk, worker, assignment_token(assignment)))
    return out


def _submit(item):
    pk, worker, token = item
    return lambda: services.assignment_submit(assignment_id=pk, worker=worker, payload=ANSWER, token=token)


def test_answers_of_one_study_do_not_wait_for_each_other(postgres_only, make_study, make_worker):
    """Answers to different tasks: two answers to one task do wait, on the task's counters (its slots)."""
    study = make_study(workers_per_task=1)
    first, second = _claimed(study, make_worker, 2)
    holder = Session(_submit(first), hold=True)
    holder.start()
    holder.worked.wait(timeout=60)
    assert holder.error is None
    other = Session(_submit(second))
    other.start()
    try:
        assert not _waits_for_lock(other), "a second answer of the study waited for the first one's transaction"
    finally:
        holder.release()
        other.join(timeout=60)
    assert other.error is None and holder.error is None
    assert Answer.objects.filter(task__study=study).count() == 2


def test_a_close_waits_for_the_answers_in_flight(postgres_only, make_study, make_worker):
    study = make_study(workers_per_task=3)
    (item,) = _claimed(study, make_worker, 1)
    holder = Session(_submit(item), hold=True)
    holder.start()
    holder.worked.wait(timeout=60)
    # The state change alone: study_close's later expiry of open assignments would wait for the answer's
    # assignment row in any case.
    closer = Session(lambda: study_transition(study=Study.objects.get(pk=study.pk), to=Study.State.CLOSED))
    closer.start()
    try:
        assert _waits_for_lock(closer), "the study closed while an answer of it was not yet stored"
    finally:
        holder.release()
        closer.join(timeout=60)
    assert holder.error is None and closer.error is None
    assert Answer.objects.filter(task__study=study).count() == 1
    assert Study.objects.get(pk=study.pk).state == Study.State.CLOSED


def test_an_answer_during_a_close_waits_and_is_refused(postgres_only, make_study, make_worker):
    study = make_study(workers_per_task=3)
    (item,) = _claimed(study, make_worker, 1)
    _cache.clear()
    closer = Session(lambda: study_transition(study=Study.objects.get(pk=study.pk), to=Study.State.CLOSED), hold=True)
    closer.start()
    closer.worked.wait(timeout=60)
    assert closer.error is None
    answer = Session(_submit(item))
    answer.start()
    try:
        assert _waits_for_lock(answer), "the answer read the study's state while its change was not committed"
    finally:
        closer.release()
        answer.join(timeout=60)
    assert isinstance(answer.error, Conflict) and "takes no more answers" in str(answer.error)
    assert not Answer.objects.filter(task__study=study).exists()


def test_an_edited_study_is_read_again(postgres_only, make_study, make_worker):
    """The cached study version is keyed by the row's xmin: an UPDATE that bypasses ``save()`` is seen."""
    study = make_study(workers_per_task=3)
    first, second = _claimed(study, make_worker, 2)
    services.assignment_submit(assignment_id=first[0], worker=first[1], payload=ANSWER, token=first[2])
    Study.objects.filter(pk=study.pk).update(min_answer_seconds=3600)  # every answer is now too fast
    services.assignment_submit(assignment_id=second[0], worker=second[1], payload=ANSWER, token=second[2])
    flags = list(Answer.objects.filter(task__study=study).order_by("id").values_list("flag", flat=True))
    assert flags == ["", Answer.Flag.TOO_FAST]


def test_an_edit_inside_the_same_transaction_is_read_again(postgres_only, make_study, make_worker):
    """Two UPDATEs in one transaction give the row the same xmin; the key's ctid still changes."""
    from django.db import transaction

    study = make_study(workers_per_task=3)
    first, second = _claimed(study, make_worker, 2)
    with transaction.atomic():
        Study.objects.filter(pk=study.pk).update(min_answer_seconds=0)
        services.assignment_submit(assignment_id=first[0], worker=first[1], payload=ANSWER, token=first[2])
        Study.objects.filter(pk=study.pk).update(min_answer_seconds=3600)
        services.assignment_submit(assignment_id=second[0], worker=second[1], payload=ANSWER, token=second[2])
    flags = list(Answer.objects.filter(task__study=study).order_by("id").values_list("flag", flat=True))
    assert flags == ["", Answer.Flag.TOO_FAST]


def test_a_callers_changes_to_the_cached_study_stay_its_own(postgres_only, make_study):
    """Each read gets its own copy of the cached study's JSON columns and kind configuration."""
    from annotation.services.intake import assignment_locked

    study = make_study(workers_per_task=3)
    worker = services.worker_signup(username="copy-check", password="a-long-password-1")
    assignment = services.assignment_claim_next(worker=worker, study=study)
    with transaction.atomic():
        first, conf = assignment_locked(assignment.pk)
        first.task.study.settings["images"].append("changed")
        conf["workers_per_task"] = 99
        again, conf_again = assignment_locked(assignment.pk)
    assert "changed" not in again.task.study.settings["images"] and conf_again["workers_per_task"] == 3


def test_an_answer_to_a_full_task_is_refused_and_stores_nothing(postgres_only, make_study, make_worker):
    """The one-statement write (``intake.answer_store_approved``) takes the slot first: none left, nothing written."""
    from annotation.models import Assignment, Task

    study = make_study(workers_per_task=3)
    (item,) = _claimed(study, make_worker, 1)
    task_id = Assignment.objects.get(pk=item[0]).task_id
    Task.objects.filter(pk=task_id).update(approved=3)  # its approvals taken meanwhile (e.g. by an import)
    with pytest.raises(Conflict, match="all the approved answers"):
        _submit(item)()
    assert not Answer.objects.filter(assignment_id=item[0]).exists()
    assert Assignment.objects.get(pk=item[0]).state == Assignment.State.ASSIGNED
    assert Task.objects.get(pk=task_id).approved == 3
