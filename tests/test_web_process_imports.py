"""A web process (gunicorn worker) serves pages and queues jobs without importing torch: each worker would
otherwise carry ~0.9 GB and boot for tens of seconds on a busy host (issue 31). Only the Celery worker that runs
the jobs loads the analysis code."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.celery_processes import ROOT

#: What a gunicorn worker does at start (post_worker_init's warm_broker) and then for requests: the sign-in page,
#: a signed-in researcher's dashboard and new-study form, and a signed-in worker's pages (every template loads the
#: builtin filters of annotation/templatetags/studio_extras.py).
WEB_PROCESS = """
import django, json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from workers.celery import warm_broker
warm_broker()
from django.contrib.auth import get_user_model
from django.test import Client
from annotation import services
researcher = services.researcher_create(username="r", password="pw-for-r-123-long")
services.worker_signup(username="w", password="pw-for-w-123-long")
statuses = {}
anonymous = Client(HTTP_HOST="127.0.0.1")
statuses["/accounts/login/"] = anonymous.get("/accounts/login/").status_code
statuses["/healthz"] = anonymous.get("/healthz").status_code
as_researcher = Client(HTTP_HOST="127.0.0.1")
as_researcher.force_login(researcher)
for path in ("/", "/studies/new/", "/registry/"):
    statuses[path] = as_researcher.get(path).status_code
as_worker = Client(HTTP_HOST="127.0.0.1")
as_worker.force_login(get_user_model().objects.get(username="w"))
statuses["/work/"] = as_worker.get("/work/").status_code
print(json.dumps({"statuses": statuses, "heavy": sorted(m for m in ("torch", "torchvision", "zennit", "sklearn",
                                                                    "umap", "ot") if m in sys.modules)}))
"""


def test_a_web_process_serves_pages_and_warms_the_broker_without_torch(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SALIENT_VAR_DIR": str(tmp_path / "var"),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}"}
    done = subprocess.run([sys.executable, "-c", WEB_PROCESS], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(code in (200, 302) for code in shown["statuses"].values()), shown["statuses"]
    assert shown["heavy"] == [], f"a web process imported {shown['heavy']}"
