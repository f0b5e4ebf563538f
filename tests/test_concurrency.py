"""50 workers claiming and submitting at once over HTTP against PostgreSQL: exact counts, no overfill."""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.models import Sum

from annotation.models import Answer, Assignment, Task
from demo.http_client import WorkerClient
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
N_WORKERS = 50


@pytest.fixture
def postgres_only(transactional_db):
    if connection.vendor != "postgresql":
        pytest.fail("the concurrency test needs PostgreSQL: run it through `make test` (DATABASE_URL)")


def _work(base_url: str, name: str, barrier: threading.Barrier) -> dict:
    client = WorkerClient(base_url)
    client.login(name, PASSWORD)
    barrier.wait(timeout=60)
    accepted, replays_refused = 0, 0
    while (assignment := client.next_assignment()) is not None:
        token = client.open_assignment(assignment)
        answer = {"choice": "person", "reason": name, "confidence": 3}
        reply = client.submit(assignment, token, answer)
        assert reply.status_code == 201, reply.text
        accepted += 1
        replay = client.submit(assignment, token, answer)
        assert replay.status_code == 409, replay.text
        replays_refused += 1
    return {"accepted": accepted, "replays_refused": replays_refused}


def test_fifty_workers_at_once(postgres_only, live_server, make_study, make_worker):
    study = make_study(images=["astronaut", "chelsea", "coffee", "rocket", "brick", "grass"], workers_per_task=5)
    names = [make_worker().user.username for _ in range(N_WORKERS)]
    barrier = threading.Barrier(N_WORKERS)
    with ThreadPoolExecutor(N_WORKERS) as pool:
        results = list(pool.map(lambda n: _work(live_server.url, n, barrier), names))

    slots = study.tasks.aggregate(s=Sum("wanted"))["s"]
    assert sum(r["accepted"] for r in results) == slots == 30
    assert sum(r["replays_refused"] for r in results) == slots
    assert Answer.objects.filter(task__study=study).count() == slots
    per_task = Counter(Answer.objects.values_list("task_id", flat=True))
    for task in Task.objects.filter(study=study):
        assert per_task[task.pk] == task.wanted == task.approved == task.filled
    pairs = Answer.objects.values_list("worker_id", "task_id")
    assert len(set(pairs)) == len(pairs)
    assert not Assignment.objects.filter(state="assigned").exists()


def test_parallel_duplicate_submissions_store_one_answer(postgres_only, live_server, make_study, make_worker):
    make_study(images=["astronaut"], workers_per_task=1)
    worker = make_worker()
    client = WorkerClient(live_server.url)
    client.login(worker.user.username, PASSWORD)
    assignment = client.next_assignment()
    token = client.open_assignment(assignment)
    barrier = threading.Barrier(10)

    def fire(_):
        barrier.wait(timeout=30)
        return client.submit(assignment, token, {"choice": "animal", "confidence": 2}).status_code

    with ThreadPoolExecutor(10) as pool:
        codes = Counter(pool.map(fire, range(10)))
    assert codes == {201: 1, 409: 9}
    assert Answer.objects.count() == 1
    assert Task.objects.get().approved == 1
