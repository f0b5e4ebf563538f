"""The embedded default's broker and worker: jobs never run inside a request, and no server is installed.

Without ``CELERY_BROKER_URL`` the broker is kombu's filesystem transport: a message is a file in
``var/celery/queue/`` (the exchange tables in ``var/celery/control/``). ``make serve`` starts one Celery
worker process for every queue (with beat) next to gunicorn (``studio/gunicorn_config.py`` calls
:func:`start_worker` and :func:`stop_worker`), so *Compute evidence* returns at once and the dashboard's bar
follows the job. With ``CELERY_BROKER_URL`` set (Redis) none of this runs: ``make worker`` serves the queues.

Importing this module creates nothing; the folders are made on first use (:func:`ensure_folders`).
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

URL = "filesystem://localhost/"
QUEUES = ("evidence", "default", "periodic")
FOLDER_OPTIONS = ("data_folder_in", "data_folder_out", "control_folder", "processed_folder")


def transport_options(folder: Path) -> dict[str, str]:
    """kombu's filesystem transport options: producers and the worker read and write one queue folder."""
    queue = str(folder / "queue")
    return {"data_folder_in": queue, "data_folder_out": queue, "control_folder": str(folder / "control"),
            "processed_folder": str(folder / "processed"), "store_processed": False}


def is_embedded(broker_url: str) -> bool:
    return broker_url.startswith("filesystem://")


def ensure_folders(options: Mapping[str, object]) -> None:
    """Make the transport's folders (kombu expects them to exist)."""
    for name in FOLDER_OPTIONS:
        if options.get(name):
            Path(str(options[name])).mkdir(parents=True, exist_ok=True)


def worker_argv(*, concurrency: int, schedule: Path, name: str = "embedded") -> list[str]:
    """The command line of the embedded worker: every queue, Celery beat inside it (expiry, reconciliation)."""
    return [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", ",".join(QUEUES),
            f"--concurrency={concurrency}", "-B", f"--schedule={schedule}", "--loglevel=info",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h"]


def wanted() -> bool:
    """Whether ``make serve`` should start the embedded worker: no broker configured, not switched off."""
    from django.conf import settings

    return settings.SALIENT_EMBEDDED_BROKER and settings.SALIENT_EMBEDDED_WORKER


def start_worker(log=None) -> subprocess.Popen:
    """Start the embedded worker process (its output goes to ``log``, default: this process's stderr)."""
    from django.conf import settings

    folder = Path(settings.VAR_DIR) / "celery"
    ensure_folders(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    argv = worker_argv(concurrency=settings.SALIENT_EMBEDDED_WORKER_CONCURRENCY, schedule=folder / "beat-schedule")
    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen(argv, cwd=root, env=os.environ.copy(), stdout=log,
                            stderr=subprocess.STDOUT if log else None)


def stop_worker(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Ask the worker to finish (a running job is redelivered on the next start), then kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
