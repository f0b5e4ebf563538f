"""Shared fixtures: researchers, workers, a live study; Celery runs eagerly unless a test says not."""
from __future__ import annotations

import os

import pytest

from tests.celery_processes import embedded_celery  # noqa: F401  (the embedded worker, for the browser tests)
from tests.mturk_helpers import mturk, mturk_study  # noqa: F401  (fixtures for the crowd-site tests)

# Playwright's sync API runs an event loop in the test thread; the ORM calls around it are safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PASSWORD = "correct-horse-battery"
SMALL_IMAGES = ["astronaut", "chelsea", "coffee"]


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path_factory):
    """Artifacts, exports and uploads of a test run go to a temporary directory."""
    root = tmp_path_factory.getbasetemp()
    settings.ARTIFACT_DIR = root / "artifacts"
    settings.EXPORT_DIR = root / "exports"
    settings.SALIENT_UPLOAD_DIR = root / "uploads"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast sign-ins in tests


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings, tmp_path_factory):
    """Rate-limit counters (kept in the cache) start at zero in every test; a file cache (the embedded
    default) lives in the test run's temporary directory, never in the checkout's ``var/``."""
    from django.core.cache import cache

    default = settings.CACHES["default"]
    if default["BACKEND"].endswith("FileBasedCache"):
        settings.CACHES = {"default": {**default, "LOCATION": str(tmp_path_factory.getbasetemp() / "cache")}}
    cache.clear()


#: A benchmark small enough for tests: 4 classes (the 3 biased ones), 32 px, tiny models.
TINY_BENCHMARK = {"classes": [0, 2, 4, 6], "train_per_class": 80, "test_per_class": 20, "image_size": 32,
                  "garment_size": 16}
TINY_TRAINING = {"robust": {"epochs": 2, "width": 8}, "standard": {"epochs": 2, "width": 8}}


@pytest.fixture(scope="session")
def benchmark_dir(tmp_path_factory):
    """One benchmark/model cache for the whole run, so tiny models train once."""
    return tmp_path_factory.mktemp("benchmark")


@pytest.fixture(autouse=True)
def _benchmark_dir(settings, benchmark_dir):
    settings.SALIENT_BENCHMARK_DIR = benchmark_dir


@pytest.fixture(autouse=True)
def _eager_celery():
    from workers.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = True


@pytest.fixture
def researcher(db):
    from annotation.services import researcher_create

    return researcher_create(username="alice", password=PASSWORD)


@pytest.fixture
def other_researcher(db):
    from annotation.services import researcher_create

    return researcher_create(username="mallory", password=PASSWORD)


@pytest.fixture
def make_worker(db):
    from annotation.services import worker_signup

    counter = iter(range(10_000))

    def make(name: str | None = None):
        return worker_signup(username=name or f"worker{next(counter)}", password=PASSWORD)

    return make


@pytest.fixture
def make_study(db, researcher, django_capture_on_commit_callbacks):
    """A study computed eagerly; ``live=True`` launches it too."""
    from annotation import services

    def make(*, name="Subjects", images=SMALL_IMAGES, workers_per_task=3, live=True, owner=None, **extra):
        study = services.study_create(
            owner=owner or researcher, name=name, kind="image_choice",
            settings={"images": list(images), "image_size": 48, **extra.pop("settings", {})},
            workers_per_task=workers_per_task, **extra,
        )
        with django_capture_on_commit_callbacks(execute=True):
            services.study_start_computing(study=study)
        study.refresh_from_db()
        if live:
            services.study_launch(study=study)
        return study

    return make


def worker_client(client_class, worker):
    client = client_class()
    client.force_login(worker.user)
    return client


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (never a downloaded browser)."""
    import shutil

    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is missing: `apt-get install chromium` (make test installs it)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def researcher_client(researcher):
    """A Django test client signed in as ``researcher``."""
    from django.test import Client

    client = Client()
    client.force_login(researcher)
    return client
