"""Real Celery worker processes for tests: started on a queue of their own, sharing the test database."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from kombu import pools as kombu_pools

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


def start_worker(queue: str, log: Path, env: dict[str, str], timeout: float = 180,
                 argv: list[str] | None = None) -> subprocess.Popen:
    """``celery worker --pool=solo -Q queue`` (or ``argv``) with ``env`` over this process's environment (a value
    of None removes the variable); waits for 'ready.' (importing Django, pandas and torch takes a minute and more
    on two busy cores, the other xdist worker included)."""
    argv = argv or [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=solo", "-Q", queue,
                    "--loglevel=info", "--without-gossip", "--without-mingle", "--without-heartbeat",
                    "-n", f"{log.stem}@%h"]
    merged = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=merged, stdout=out, stderr=subprocess.STDOUT)
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


@pytest.fixture
def embedded_celery(transactional_db, tmp_path, benchmark_dir, monkeypatch):
    """The embedded default for real: the worker process ``make serve`` starts (same command line, one child),
    on kombu's filesystem transport in a folder of this test, with this process publishing there too."""
    from django.conf import settings

    from studio import embedded_broker
    from workers.celery import app, warm_broker

    var = tmp_path / "var"
    options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, **embedded_broker.transport_options(var / "celery")}
    env = {"CELERY_BROKER_URL": None, "SALIENT_VAR_DIR": str(var), "DATABASE_URL": database_url(),
           "SALIENT_ARTIFACT_DIR": str(settings.ARTIFACT_DIR), "SALIENT_BENCHMARK_DIR": str(benchmark_dir),
           "SALIENT_ONE_QUEUE": None}
    argv = embedded_broker.worker_argv(concurrency=1, schedule=var / "celery" / "beat-schedule", name="embedded-test")
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_routes)
    # Celery reads CELERY_BROKER_URL from the environment before app.conf (as `make test` sets it: Redis)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    app.conf.broker_url, app.conf.broker_transport_options = embedded_broker.URL, options
    app.conf.task_always_eager = False
    _reset_connections(app)
    warm_broker()  # as each gunicorn process does at start (studio/gunicorn_config.py)
    log = tmp_path / "embedded-worker.log"
    proc = start_worker("", log, env, argv=argv)
    try:
        yield {"process": proc, "log": log, "folder": var / "celery"}
    finally:
        stop_worker(proc)
        app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_routes = saved
        app.conf.task_always_eager = True
        _reset_connections(app)


def _reset_connections(app) -> None:
    """Forget the broker connections made for the previous broker URL."""
    # kombu keeps one connection pool per broker URL in a process-wide registry (kombu.pools), which
    # app.pool hands out again: closing the app's pool alone leaves a closed pool registered for that URL.
    kombu_pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
