"""The Celery app, configured from Django settings (``CELERY_*``).

Tasks are routed by name to three queues (``CELERY_TASK_ROUTES``): ``evidence`` (torch jobs, hours),
``default`` (crowd-site calls) and ``periodic`` (expiry, reconciliation), each served by its own workers
(``make worker QUEUE=…``). A worker refuses to start when a task may run longer than the broker's
visibility timeout, after which Redis would hand the still-running job to a second worker.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

from celery import Celery
from celery.signals import before_task_publish, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

app = Celery("salient")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"], related_name="tasks")

QUEUES = ("evidence", "default", "periodic")
REDIS_VISIBILITY_DEFAULT = 3600  # kombu's default when broker_transport_options names none


class VisibilityTimeoutTooShort(RuntimeError):
    """The broker would redeliver a job while it may still be running."""


def longest_time_limit(celery_app: Celery) -> tuple[str, float]:
    """The task with the longest hard time limit and that limit (the app's default where a task sets none)."""
    celery_app.loader.import_default_modules()
    limits = {name: task.time_limit or celery_app.conf.task_time_limit for name, task in celery_app.tasks.items()}
    name = max(limits, key=lambda n: (limits[n] or float("inf"), n.startswith("workers.")))
    return name, limits[name] or float("inf")


def check_visibility_timeout(celery_app: Celery) -> None:
    """Raise unless the broker's visibility timeout exceeds every task's hard time limit."""
    visibility = (celery_app.conf.broker_transport_options or {}).get("visibility_timeout", REDIS_VISIBILITY_DEFAULT)
    name, limit = longest_time_limit(celery_app)
    if visibility <= limit:
        raise VisibilityTimeoutTooShort(
            f"broker visibility_timeout {visibility}s does not exceed the time limit of {name} ({limit}s): a job "
            "still running would be delivered to a second worker; raise CELERY_BROKER_TRANSPORT_OPTIONS"
            "['visibility_timeout'] or lower the task's time limit")


def ensure_broker_folders(celery_app: Celery = app) -> None:
    """The embedded default's filesystem broker needs its folders (made on first use, not at import)."""
    from studio import embedded_broker

    if embedded_broker.is_embedded(str(celery_app.conf.broker_url or "")):
        embedded_broker.ensure_folders(celery_app.conf.broker_transport_options or {})


def warm_broker(celery_app: Celery = app) -> None:
    """Load the tasks, connect and declare the queues once (a web process at start), so the first job queued
    pays no set-up (a third of a second on a busy 2-core host)."""
    celery_app.loader.import_default_modules()
    celery_app.finalize(auto=True)
    ensure_broker_folders(celery_app)
    with celery_app.producer_or_acquire() as producer:
        for name in QUEUES:
            producer.maybe_declare(celery_app.amqp.queues[name])


@before_task_publish.connect
def make_broker_folders(sender=None, **kwargs) -> None:
    ensure_broker_folders()


@worker_init.connect
def refuse_redelivery_of_running_jobs(sender=None, **kwargs) -> None:
    """Stop the worker before it consumes anything (Celery only logs an exception raised by a signal handler)."""
    ensure_broker_folders(sender.app if sender is not None else app)
    try:
        check_visibility_timeout(sender.app if sender is not None else app)
    except VisibilityTimeoutTooShort as exc:
        raise SystemExit(f"refusing to start the worker: {exc}") from exc


def run_jobs_in_process_without_a_broker() -> bool:
    """Shell commands (``manage.py demo``, ``manage.py study compute``) on the embedded default run their jobs in
    this process, as they always did (no worker need be running); web requests never do. Returns whether."""
    from django.conf import settings

    if settings.SALIENT_EMBEDDED_BROKER:
        app.conf.task_always_eager = True
    return bool(app.conf.task_always_eager)


@contextmanager
def routed_to(queue: str):
    """Send every task to ``queue`` meanwhile (tests run a worker on a queue of their own)."""
    saved = app.conf.task_routes
    app.conf.task_routes = {"*": {"queue": queue}}
    _reload_routes()
    try:
        yield
    finally:
        app.conf.task_routes = saved
        _reload_routes()


def _reload_routes() -> None:
    app.amqp.flush_routes()
    app.amqp.router = app.amqp.Router()
