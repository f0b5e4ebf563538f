"""The suite's parallel run (tests/parallel.py): each xdist worker on a Redis database of its own."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.parallel import GIVEN, redis_url_for_worker, worker_number


def test_each_worker_moves_the_redis_database_index_up_by_its_number():
    assert redis_url_for_worker("redis://127.0.0.1:6379/8", 0) == "redis://127.0.0.1:6379/8"
    assert redis_url_for_worker("redis://127.0.0.1:6379/8", 1) == "redis://127.0.0.1:6379/9"
    assert redis_url_for_worker("redis://:secret@redis:6380", 2) == "redis://:secret@redis:6380/2"  # no index: 0


def test_a_worker_past_the_last_redis_database_is_refused():
    assert redis_url_for_worker("redis://127.0.0.1:6379/14", 1) == "redis://127.0.0.1:6379/15"
    with pytest.raises(pytest.UsageError, match="Redis database 16"):
        redis_url_for_worker("redis://127.0.0.1:6379/15", 1)


def test_this_worker_uses_its_own_broker_database():
    """Under ``-n 2`` (make test) the settings and the Celery app see this worker's database, not the run's."""
    from django.conf import settings

    from workers.celery import app

    number, given = worker_number(), GIVEN["CELERY_BROKER_URL"]
    if number is None or not given.startswith("redis://"):
        pytest.skip("runs inside an xdist worker with a Redis broker (make test)")
    assert settings.CELERY_BROKER_URL == app.conf.broker_url == redis_url_for_worker(given, number)


def test_each_test_process_has_a_var_folder_of_its_own_outside_the_checkout():
    from django.conf import settings

    if "SALIENT_TEST_VAR_ROOT" not in os.environ:
        pytest.skip("the run set SALIENT_VAR_DIR itself")
    var = Path(settings.VAR_DIR)
    assert var.parent == Path(os.environ["SALIENT_TEST_VAR_ROOT"]) != settings.BASE_DIR / "var"
    assert var.name == ("main" if worker_number() is None else f"gw{worker_number()}")
