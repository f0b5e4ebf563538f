"""Celery queues: tasks routed by name, and a broker visibility timeout longer than any job may run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from workers.celery import (
    QUEUES,
    VisibilityTimeoutTooShort,
    app,
    check_visibility_timeout,
    longest_time_limit,
    refuse_redelivery_of_running_jobs,
    routed_to,
)

ROOT = Path(__file__).resolve().parent.parent
EXPECTED_QUEUE = {
    "workers.tasks.compute_study_evidence": "evidence",
    "workers.tasks.compute_study_outputs": "evidence",
    "workers.tasks.run_kind_job": "evidence",
    "workers.tasks.expire_assignments": "periodic",
    "workers.tasks.reconcile_crowd_backends": "periodic",
    "workers.tasks.open_recruitment": "default",
    "workers.tasks.close_recruitment": "default",
    "workers.tasks.stop_external_task": "default",
    "workers.tasks.aggregate_study": "default",
    "workers.tasks.export_study": "default",
}


@pytest.fixture(autouse=True, scope="module")
def _tasks_registered():
    app.loader.import_default_modules()


def queue_of(name: str) -> str:
    return app.amqp.router.route({}, name)["queue"].name


@pytest.mark.parametrize("name", sorted(EXPECTED_QUEUE))
def test_each_task_goes_to_its_queue(name):
    assert name in app.tasks, f"{name} is not a registered task"
    assert queue_of(name) == EXPECTED_QUEUE[name]


def test_every_worker_task_lands_on_a_served_queue():
    ours = [name for name in app.tasks if name.startswith("workers.")]
    assert ours and {queue_of(name) for name in ours} <= set(QUEUES)


def test_beat_entries_expire_before_the_next_run_is_due():
    for entry in app.conf.beat_schedule.values():
        assert queue_of(entry["task"]) == "periodic"
        assert 0 < entry["options"]["expires"] < entry["schedule"]


def test_routed_to_sends_everything_to_one_queue_and_restores_the_routes():
    with routed_to("test-queue"):
        assert {queue_of(name) for name in EXPECTED_QUEUE} == {"test-queue"}
    assert queue_of("workers.tasks.run_kind_job") == "evidence"


def test_visibility_timeout_exceeds_the_longest_time_limit():
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    _, longest = longest_time_limit(app)
    assert longest == app.conf.task_time_limit and visibility > longest
    check_visibility_timeout(app)


def test_a_task_allowed_to_outlive_the_visibility_timeout_is_refused(monkeypatch):
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    monkeypatch.setattr(app.tasks["workers.tasks.run_kind_job"], "time_limit", visibility + 1)
    with pytest.raises(VisibilityTimeoutTooShort, match=r"workers\.tasks\.run_kind_job"):
        check_visibility_timeout(app)
    with pytest.raises(SystemExit, match="refusing to start the worker"):  # worker_init stops the worker
        refuse_redelivery_of_running_jobs(sender=types.SimpleNamespace(app=app))


@pytest.mark.parametrize("time_limit", [120, 3 * 3600, 30 * 3600])
def test_visibility_timeout_follows_the_time_limit_setting(tmp_path, time_limit):
    code = ("import json, studio.settings as s; print(json.dumps([s.CELERY_TASK_TIME_LIMIT, "
            "s.CELERY_TASK_SOFT_TIME_LIMIT, s.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']]))")
    env = {"PATH": os.environ["PATH"], "SALIENT_VAR_DIR": str(tmp_path), "CELERY_TASK_TIME_LIMIT": str(time_limit)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    hard, soft, visibility = json.loads(done.stdout)
    assert hard == time_limit and 0 < soft < hard
    assert visibility >= hard + 600
