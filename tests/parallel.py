"""Running the suite on several pytest-xdist workers (``make test`` runs ``-n 2``): what each worker owns.

Loaded with ``-p tests.parallel`` (pyproject.toml's addopts), so this module runs in every worker process before
pytest-django reads the Django settings and before torch is imported:

* each worker gets a Redis database of its own: the index of ``CELERY_BROKER_URL`` (and ``CACHE_URL``) plus
  the worker's number (``gw1`` of ``redis://…/8`` uses ``/9``), so the real Celery workers a test starts, and
  Redis's redelivery of unacknowledged messages, see only that worker's queues;
* torch gets ``cores // workers`` threads (``OMP_NUM_THREADS``, read by torch at import and inherited by the
  Celery and gunicorn processes the tests start), so two workers do not oversubscribe two cores;
* each pytest process gets a ``SALIENT_VAR_DIR`` of its own in a temporary directory (unless the run sets one),
  so no test process writes the checkout's ``var/`` (the secret key file, the file cache, the SQLite test
  database), and the Celery and gunicorn processes a test starts inherit it;
* the PostgreSQL (and SQLite) test database is pytest-django's: it suffixes the name with the worker's id;
  temporary directories are pytest's (``tmp_path_factory`` has a base directory per worker);
* each test module runs whole on one worker (``--dist loadfile``), so a module-scoped fixture (a trained model)
  is built once; the modules listed in :data:`FIRST` are scheduled first (``--no-loadscope-reorder`` keeps this
  order), so the longest ones do not start last and leave the other worker idle. (``--dist loadgroup`` and
  ``xdist_group`` marks do nothing with pytest 9.2: xdist 3.8 renames ``item._nodeid``, which pytest 9 no longer
  reads, so every test would be its own unit.)
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from urllib.parse import urlsplit, urlunsplit

import pytest

REDIS_DATABASES = 16  # Redis's default ``databases``

#: The modules that take longest (``--durations``), longest first: scheduled before all others.
FIRST = (
    "tests/analysis/test_spray_demo_model.py",
    "tests/test_evidence_shards.py",
)


def worker_number() -> int | None:
    """0 for ``gw0``, 1 for ``gw1``…; None outside xdist (or in the controlling process)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") else None


def redis_url_for_worker(url: str, number: int) -> str:
    """``url`` with its database index moved up by ``number`` (``redis://h:6379/8``, 1 -> ``redis://h:6379/9``)."""
    parts = urlsplit(url)
    index = int(parts.path.strip("/") or 0) + number
    if index >= REDIS_DATABASES:
        raise pytest.UsageError(f"{url} plus xdist worker {number} is Redis database {index}: use a lower index")
    return urlunsplit(parts._replace(path=f"/{index}"))


#: The Redis URLs as the run was given them (before :func:`_own_resources` moved this worker's index).
GIVEN = {name: os.environ.get(name, "") for name in ("CELERY_BROKER_URL", "CACHE_URL")}


def _own_resources(number: int) -> None:
    for name, url in GIVEN.items():
        if url.startswith("redis://"):
            os.environ[name] = redis_url_for_worker(url, number)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))


def _own_var_dir(number: int | None) -> None:
    """The controlling process makes the run's folder (removed when it exits); each worker uses ``gw<N>`` in it."""
    root = os.environ.get("SALIENT_TEST_VAR_ROOT")
    if root is None:
        if os.environ.get("SALIENT_VAR_DIR"):
            return  # the run chose its own
        root = tempfile.mkdtemp(prefix="salient-test-var-")
        os.environ["SALIENT_TEST_VAR_ROOT"] = root
        atexit.register(shutil.rmtree, root, ignore_errors=True)
    os.environ["SALIENT_VAR_DIR"] = os.path.join(root, "main" if number is None else f"gw{number}")


_NUMBER = worker_number()
_own_var_dir(_NUMBER)
if _NUMBER is not None:
    _own_resources(_NUMBER)


def _module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _NUMBER is None:
        return
    rank = {module: i for i, module in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(_module_of(item), len(FIRST)))  # stable: the rest keep their order
