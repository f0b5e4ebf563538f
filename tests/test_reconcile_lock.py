"""Crowd reconciliation covers live studies only and never runs twice at once (a PostgreSQL advisory lock),
shown with real threads, each on its own database session, against a fake MTurk."""
from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.locks import exclusive
from annotation.models import Assignment, Study, Task
from tests.mturk_helpers import GOOD, PUBLIC, claim_of, entry_url


class FakeMTurk:
    """The few calls of boto3's mturk client that launch, submit and reconciliation make; thread-safe.

    ``list_assignments_for_hit`` waits at ``gate`` (set it to let listings through) after telling ``listing``.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.assignments: dict[str, list[dict]] = {}
        self.listing, self.gate = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._hits = 0

    def _record(self, call: str, key: str) -> None:
        with self._lock:
            self.calls.append((call, key, threading.current_thread().name))

    def of(self, call: str) -> list[tuple[str, str]]:
        return [(key, thread) for c, key, thread in self.calls if c == call]

    def create_hit(self, **params):
        with self._lock:
            hit, self._hits = f"H{self._hits}", self._hits + 1
        return {"HIT": {"HITId": hit}}

    def get_assignment(self, AssignmentId):
        hit, item = next((h, a) for h, items in self.assignments.items() for a in items
                         if a["AssignmentId"] == AssignmentId)
        return {"Assignment": {**item, "HITId": hit}}

    def list_assignments_for_hit(self, HITId, **params):
        self._record("list", HITId)
        self.listing.set()
        assert self.gate.wait(10), "the test never opened the gate"
        with self._lock:
            return {"Assignments": [dict(a) for a in self.assignments.get(HITId, [])], "NumResults": 0}

    def approve_assignment(self, AssignmentId, **params):
        self._record("approve", AssignmentId)
        with self._lock:
            for items in self.assignments.values():
                for item in items:
                    if item["AssignmentId"] == AssignmentId:
                        item["AssignmentStatus"] = "Approved"
        return {}

    def update_expiration_for_hit(self, HITId, **params):
        self._record("expire", HITId)
        return {}


@pytest.fixture
def fake_mturk(settings, monkeypatch):
    from annotation.recruiters.mturk_client import MTurkService

    settings.SALIENT_PUBLIC_URL = PUBLIC
    fake = FakeMTurk()
    monkeypatch.setattr(MTurkService, "make_client", classmethod(lambda cls, sandbox: fake))
    return fake


def live_mturk_study(make_study, capture, name: str) -> Study:
    study = make_study(name=name, images=["astronaut", "chelsea"], workers_per_task=3, reward_cents=12,
                       backend="mturk", live=False)
    with capture(execute=True):
        services.study_launch(study=study)
    study.refresh_from_db()
    return study


def answer_hit(fake: FakeMTurk, task: Task, assignment_id: str, worker_id: str) -> Assignment:
    """A worker answers through the framed page; MTurk lists the assignment as submitted."""
    fake.assignments.setdefault(task.external_id, []).append(
        {"AssignmentId": assignment_id, "WorkerId": worker_id, "AssignmentStatus": "Submitted"})
    token = claim_of(Client().get(entry_url(task, assignmentId=assignment_id, workerId=worker_id))["Location"])
    assert Client().post(reverse("mturk_task", args=[task.pk]), {"token": token, **GOOD}).status_code == 200
    return Assignment.objects.get(task=task, external_id=assignment_id)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_do_not_both_reconcile(make_study, fake_mturk, django_capture_on_commit_callbacks):
    study = live_mturk_study(make_study, django_capture_on_commit_callbacks, "Concurrent")
    answer_hit(fake_mturk, study.tasks.order_by("id").first(), "A1", "W1")
    results: dict[str, int] = {}

    def run(name: str) -> None:
        try:
            results[name] = services.recruitment_reconcile_all()
        finally:
            connection.close()  # this thread's database session (and with it any lock it held) ends

    first = threading.Thread(target=run, args=("first",), name="first")
    first.start()
    assert fake_mturk.listing.wait(10), "the first run never reached MTurk"
    second = threading.Thread(target=run, args=("second",), name="second")
    second.start()
    second.join(10)  # the second run returns while the first is held inside MTurk's listing
    assert not second.is_alive() and results["second"] == 0
    fake_mturk.gate.set()
    first.join(10)
    assert results["first"] == 1
    assert {thread for _, thread in fake_mturk.of("list")} == {"first"}
    assert sorted(hit for hit, _ in fake_mturk.of("list")) == ["H0", "H1"]
    assert fake_mturk.of("approve") == [("A1", "first")]
    assert Assignment.objects.get(external_id="A1").platform_status == "Approved"
    assert services.recruitment_reconcile_all() == 0  # the lock was released: this run lists, has nothing to do
    assert len(fake_mturk.of("list")) == 4 and len(fake_mturk.of("approve")) == 1


def test_only_live_studies_are_reconciled(make_study, fake_mturk, django_capture_on_commit_callbacks):
    fake_mturk.gate.set()
    live = live_mturk_study(make_study, django_capture_on_commit_callbacks, "Live")
    others = {}
    for state in ("draft", "ready", "closed", "aggregated"):
        study = make_study(name=state, images=["coffee"], backend="mturk", live=False)
        Study.objects.filter(pk=study.pk).update(state=state)
        Task.objects.filter(study=study).update(external_id=f"{state.upper()}-HIT")
        others[state] = study
    answer_hit(fake_mturk, live.tasks.order_by("id").first(), "A1", "W1")
    closed_task = others["closed"].tasks.get()
    fake_mturk.assignments[closed_task.external_id] = [{"AssignmentId": "A9", "WorkerId": "W9",
                                                        "AssignmentStatus": "Submitted"}]
    assert services.recruitment_reconcile_all() == 1
    assert sorted(hit for hit, _ in fake_mturk.of("list")) == ["H0", "H1"]
    assert fake_mturk.of("approve") == [("A1", "MainThread")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_lock_dies_with_the_session_that_held_it():
    """A worker killed while reconciling cannot leave the lock held: PostgreSQL ends its session
    (``pg_terminate_backend``, what a killed process or a dropped connection amounts to) and the lock with it."""
    if connection.vendor != "postgresql":
        pytest.fail("the advisory-lock test needs PostgreSQL: run it through `make test` (DATABASE_URL)")
    taken, go_on, done = threading.Event(), threading.Event(), threading.Event()
    holder_pid: list[int] = []

    def holder() -> None:
        try:
            with exclusive("test-lock") as held:
                assert held
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    holder_pid.append(cursor.fetchone()[0])
                taken.set()
                go_on.wait(10)  # killed meanwhile: the release below finds the session gone and only logs
            done.set()
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert taken.wait(10)
    with exclusive("test-lock") as held:
        assert not held
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [holder_pid[0]])
        assert cursor.fetchone()[0]
    with exclusive("test-lock", wait=5) as held:
        assert held  # the holder's thread is still inside its block: only the session's end freed the lock
    go_on.set()
    thread.join(10)
    assert done.is_set()  # the holder's release met a dead session without raising


def test_without_postgresql_the_lock_is_a_cache_entry(db, monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with exclusive("cached") as first:
        with exclusive("cached") as second:
            assert first and not second
    with exclusive("cached") as again:
        assert again
