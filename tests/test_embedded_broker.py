"""The embedded default runs jobs in a real Celery worker process on kombu's filesystem transport: a request
never waits for a job (issue 28, item 2)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.celery_processes import ROOT
from tests.study_helpers import sign_in

SHOW_CELERY = """
import django, os
os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
django.setup()
from workers.celery import app
print("eager:", app.conf.task_always_eager)
print("broker:", app.conf.broker_url.split("://")[0])
print("queue folder:", app.conf.broker_transport_options.get("data_folder_in"))
print("var exists:", os.path.exists(os.environ["SALIENT_VAR_DIR"]))
"""


def celery_config(tmp_path, **env) -> str:
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SALIENT_VAR_DIR": str(tmp_path / "var"), **env}
    done = subprocess.run([sys.executable, "-c", SHOW_CELERY], cwd=ROOT, env=clean, capture_output=True, text=True,
                          check=False,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_embedded_default_queues_jobs_as_files_instead_of_running_them_eagerly(tmp_path):
    shown = celery_config(tmp_path)
    assert "eager: False" in shown and "broker: filesystem" in shown
    assert f"queue folder: {tmp_path / 'var' / 'celery' / 'queue'}" in shown
    assert "var exists: False" in shown  # the folders are made on first use, not by importing the settings


def test_a_configured_broker_is_used_as_it_is(tmp_path):
    shown = celery_config(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6379/9")
    assert "eager: False" in shown and "broker: redis" in shown and "queue folder: None" in shown


@pytest.mark.slow
@pytest.mark.browser
def test_compute_evidence_returns_at_once_and_the_bar_follows_the_worker(live_server, page, embedded_celery,
                                                                         researcher):
    from annotation import services
    from annotation.models import Job

    study = services.study_create(owner=researcher, name="embedded", kind="image_choice", workers_per_task=1,
                                  settings={"images": ["astronaut", "chelsea", "coffee", "coins", "camera", "rocket"],
                                            "image_size": 64})
    sign_in(page, live_server.url, researcher.username)
    page.goto(f"{live_server.url}/studies/{study.pk}/")
    with page.expect_navigation():
        page.click("button:has-text('Compute evidence')")
    # The browser's own clock: from the press (the POST, its redirect) to the dashboard loaded.
    timing = page.evaluate("performance.getEntriesByType('navigation')[0].toJSON()")
    assert (timing["type"], timing["redirectCount"]) == ("navigate", 1)  # the POST's answer, not a reload
    returned = timing["duration"] / 1000
    print(f"Compute evidence returned in {returned:.3f}s")
    assert returned < 1.0
    assert not page.inner_text("#job-text").startswith("done")  # the page came back before the job ran
    assert page.inner_text("#study-state") == "computing"
    # The dashboard's poll follows the job the worker process runs; the page reloads into the new state.
    page.wait_for_function("() => ['ready', 'draft'].includes(document.getElementById('study-state').textContent)",
                           timeout=60_000)
    study.refresh_from_db()
    assert study.state == "ready", f"{study.error}\n{embedded_celery['log'].read_text()[-3000:]}"
    assert page.get_attribute("#job-bar", "aria-valuenow") == "100"
    assert page.is_visible("button:has-text('Launch')")
    job = Job.objects.get(study=study, name="evidence")
    assert (job.state, job.done, job.total) == ("done", 6, 6)
    assert study.tasks.count() == 6
    assert "compute_study_evidence[" in embedded_celery["log"].read_text()


@pytest.mark.slow
def test_make_serve_starts_the_worker_next_to_gunicorn_and_stops_it(tmp_path):
    """``make serve`` (gunicorn with studio/gunicorn_config.py) starts the embedded worker and stops it on exit."""
    import re
    import signal
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SALIENT_VAR_DIR": str(tmp_path / "var"),
           "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "SALIENT_EMBEDDED_WORKER_CONCURRENCY": "1"}
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        serve = subprocess.Popen([str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "studio/gunicorn_config.py",
                                  "studio.wsgi"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180  # as start_worker (tests/celery_processes.py): imports are slow on busy cores
        while not re.search(r"@\S+ ready\.", log.read_text()):
            assert serve.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        worker_pid = int(re.search(r"embedded Celery worker started \(pid (\d+)\)", log.read_text()).group(1))
        assert (tmp_path / "var" / "celery" / "queue").is_dir()
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)


@pytest.mark.parametrize(("state", "says"), [("draft", "compute the evidence first"),
                                             ("computing", "the evidence job is running"),
                                             ("ready", "Launch</b> the study, then <b>Aggregate")])
def test_an_empty_results_page_says_what_it_waits_for(researcher, researcher_client, state, says):
    from django.urls import reverse

    from annotation import services
    from annotation.models import Study

    study = services.study_create(owner=researcher, name="waiting", kind="misclassification", settings={})
    Study.objects.filter(pk=study.pk).update(state=state)
    page = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
    assert says in page
    assert ("compute the evidence first" in page) == (state == "draft")
