"""Real Celery worker processes for tests: started on a queue of their own, sharing the test database."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def redis_broker() -> str:
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        pytest.fail("set CELERY_BROKER_URL to a Redis URL (as `make test` does) to run the real-worker tests")
    return broker


def start_worker(queue: str, log: Path, env: dict[str, str], timeout: float = 60) -> subprocess.Popen:
    """``celery worker --pool=solo -Q queue`` with ``env`` over this process's environment; waits for 'ready.'."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=solo", "-Q", queue,
             "--loglevel=info", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{log.stem}@%h"],
            cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while "ready." not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the Celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    return proc


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def not_eager():
    """Celery tasks go to the broker (the real workers) instead of running in the test."""
    from workers.celery import app

    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = True


def wait_for(study, states: set[str], timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study.refresh_from_db()
        if study.state in states:
            return study
        time.sleep(0.3)
    raise AssertionError(f"study stayed {study.state} for {timeout}s")
