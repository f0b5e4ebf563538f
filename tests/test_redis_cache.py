"""The Redis cache of ``CACHE_URL`` (``studio.cache``): one client per pool, ``incr`` in one round trip with
Django's semantics, and django-ratelimit counting through it as before."""
from __future__ import annotations

import os
import types
import uuid

import pytest
import redis
from django_ratelimit import core
from django.test import RequestFactory

from studio.cache import RedisCache

pytestmark = [pytest.mark.redis]


@pytest.fixture
def cache():
    url = os.environ.get("CACHE_URL") or os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis://"):
        pytest.fail("set CACHE_URL or CELERY_BROKER_URL to a Redis URL (as `make test` does) to test the Redis cache")
    backend = RedisCache(url, {"KEY_PREFIX": f"test-{uuid.uuid4().hex}"})
    yield backend
    backend.delete_many([f"k{i}" for i in range(4)])


@pytest.fixture
def commands(monkeypatch):
    """The commands sent to Redis (each is one round trip)."""
    sent: list[str] = []
    original = redis.connection.AbstractConnection.send_command

    def send_command(self, *args, **kwargs):
        sent.append(str(args[0]).upper())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_command", send_command)
    return sent


def test_one_client_serves_every_operation(cache, monkeypatch):
    made = []
    init = redis.Redis.__init__
    monkeypatch.setattr(redis.Redis, "__init__", lambda self, *a, **kw: made.append(1) or init(self, *a, **kw))
    cache.add("k0", 1, 60)
    for _ in range(3):
        cache.incr("k0")
        cache.get("k0")
    assert cache.get("k0") == 4 and len(made) == 1


def test_incr_is_one_round_trip_and_keeps_djangos_semantics(cache, commands):
    cache.set("k1", 5, 60)
    cache.incr("k1", 0)  # registers the script
    commands.clear()
    assert cache.incr("k1") == 6 and cache.incr("k1", 10) == 16
    assert len(commands) == 2  # EXISTS + INCRBY of Django's backend would be four
    with pytest.raises(ValueError):
        cache.incr("k2")
    assert cache.get("k2") is None  # a missing key is not created
    client = cache._cache.get_client(write=True)
    assert 0 < client.ttl(cache.make_key("k1")) <= 60  # the expiry is kept


def test_rate_limit_counts_through_it_in_two_round_trips(cache, commands, monkeypatch, settings):
    monkeypatch.setattr("django_ratelimit.core.caches", {"default": cache})
    monkeypatch.setattr("django_ratelimit.core.time", types.SimpleNamespace(time=lambda: 1_900_000_000.0))
    cache.get("k3")  # the connection's hand-shake (HELLO, SELECT ...) is not counted
    request = RequestFactory().post("/ext/a/1/", REMOTE_ADDR=f"10.9.{uuid.uuid4().int % 250}.1")
    usages = []
    for _ in range(4):
        commands.clear()
        usages.append(core.get_usage(request, group="answer", key="ip", rate="3/m", method="POST", increment=True))
        assert len(commands) <= 2, commands  # SET NX, then the script; Django's backend: SET NX, EXISTS, INCRBY
    assert [u["count"] for u in usages] == [1, 2, 3, 4]
    assert [u["should_limit"] for u in usages] == [False, False, False, True]
