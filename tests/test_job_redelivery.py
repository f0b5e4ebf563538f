"""A job's broker message delivered again while its first run is alive does not run twice; once that run's worker
died and its heartbeat went stale, a redelivery runs the job.

Each delivery is a real worker process (forked) running the Celery task on the same job id against PostgreSQL.
The study's kind is image choice whose evidence step heartbeats (``progress``) until a file says go on, and
notes every run of its body in a file.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
from django.db import connection, connections

from annotation import services
from annotation.models import Job, Study
from annotation.task_kinds import TASK_KINDS, register_task_kind
from annotation.task_kinds.image_choice import ImageChoice

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STALE_SECONDS = 3  # SALIENT_JOB_STALE_SECONDS of this test
BEAT_SECONDS = 0.1


class HeldImageChoice(ImageChoice):
    """Image choice whose evidence step notes its run, then heartbeats until ``<folder>/release`` exists."""

    name = "held_image_choice"
    folder: Path  # set by the fixture before the workers fork

    def build_tasks(self, ctx, progress):
        with open(self.folder / "runs", "a") as runs:
            runs.write(f"{os.getpid()}\n")
        while not (self.folder / "release").exists():
            progress(0, 1, "held")
            time.sleep(BEAT_SECONDS)
        yield from super().build_tasks(ctx, progress)


STARTED: list[multiprocessing.Process] = []


@pytest.fixture
def held_kind(tmp_path, settings):
    if connection.vendor != "postgresql":
        pytest.fail("the redelivery test needs PostgreSQL: run it through `make test` (DATABASE_URL)")
    settings.SALIENT_JOB_STALE_SECONDS = STALE_SECONDS
    HeldImageChoice.folder = tmp_path
    register_task_kind(HeldImageChoice)
    yield tmp_path
    TASK_KINDS.pop(HeldImageChoice.name)
    for process in STARTED:  # a failed assertion may leave a held run behind
        if process.is_alive():
            process.kill()
            process.join(10)
    STARTED.clear()


_INHERITED: list = []  # sockets a fork may have copied from the parent: kept unused, never closed from here


def _deliver(job_id: int) -> None:
    """One worker process receiving the job's message, on a database connection of its own."""
    from workers.tasks import compute_study_evidence

    for conn in connections.all():
        if conn.connection is not None:
            _INHERITED.append(conn.connection)
            conn.connection = None
    compute_study_evidence(job_id)


def _worker(job_id: int) -> multiprocessing.Process:
    connections.close_all()  # the child opens its own connection
    process = multiprocessing.get_context("fork").Process(target=_deliver, args=(job_id,), daemon=True)
    process.start()
    STARTED.append(process)
    return process


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_redelivery_runs_once_while_alive_and_again_after_the_worker_died(transactional_db, researcher, held_kind,
                                                                          monkeypatch):
    from workers import tasks

    def runs() -> int:
        path = held_kind / "runs"
        return len(path.read_text().split()) if path.exists() else 0

    study = services.study_create(owner=researcher, name="held", kind=HeldImageChoice.name, workers_per_task=1,
                                  settings={"images": ["astronaut"], "image_size": 32})
    sent: list[int] = []
    monkeypatch.setattr(tasks.compute_study_evidence, "delay", sent.append)  # the broker: keep the message
    job = services.study_start_computing(study=study)
    assert sent == [job.pk]

    first = _worker(job.pk)
    _wait_for(lambda: runs() == 1)
    time.sleep(STALE_SECONDS + 0.5)  # the claim is older than the stale window: only the heartbeat keeps it
    second = _worker(job.pk)  # the broker redelivers while the first run is alive
    second.join(30)
    job.refresh_from_db()
    assert second.exitcode == 0 and first.is_alive()
    assert runs() == 1 and job.state == Job.State.RUNNING and job.attempts == 1
    assert not study.tasks.exists()

    os.kill(first.pid, signal.SIGKILL)  # the first worker dies mid-job: no cleanup, the job stays "running"
    first.join(10)
    third = _worker(job.pk)  # redelivered at once: the last heartbeat is still fresh
    third.join(30)
    job.refresh_from_db()
    assert third.exitcode == 0 and runs() == 1 and job.state == Job.State.RUNNING and job.attempts == 1

    time.sleep(STALE_SECONDS + 0.5)
    (held_kind / "release").touch()
    fourth = _worker(job.pk)  # after the heartbeat went stale a redelivery takes the job over
    fourth.join(120)
    job.refresh_from_db()
    study.refresh_from_db()
    assert fourth.exitcode == 0 and runs() == 2
    assert job.state == Job.State.DONE and job.attempts == 2
    assert study.state == Study.State.READY and study.tasks.count() == 1
