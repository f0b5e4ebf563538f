"""``/healthz``: 200 when the database and the broker answer, 503 naming the one that does not."""
from __future__ import annotations

import pytest
from django.db import connection, connections


@pytest.fixture
def unreachable_database(monkeypatch):
    """The health check's connection points at a database that cannot be reached."""
    broken = connections.create_connection("default")
    if connection.vendor == "postgresql":
        broken.settings_dict = {**broken.settings_dict, "HOST": "127.0.0.1", "PORT": "1"}
    else:
        broken.settings_dict = {**broken.settings_dict, "NAME": "/proc/no-such-dir/db.sqlite3"}
    monkeypatch.setattr("studio.health.connection", broken)
    yield
    broken.close()


def test_healthy_when_database_and_broker_answer(client, db):
    reply = client.get("/healthz")
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert body["ok"] is True and body["failed"] == []
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
    assert "no-cache" in reply["Cache-Control"]


def test_unreachable_broker_gives_503_naming_the_broker(client, db, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    reply = client.get("/healthz")
    assert reply.status_code == 503
    body = reply.json()
    assert body["failed"] == ["broker"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"] == {"ok": False, "error": "OperationalError", "ms": body["checks"]["broker"]["ms"]}


def test_unreachable_database_gives_503_naming_the_database(client, unreachable_database):
    reply = client.get("/healthz")
    assert reply.status_code == 503
    body = reply.json()
    assert body["failed"] == ["database"] and body["checks"]["database"]["ok"] is False
    assert "127.0.0.1" not in reply.content.decode() and "/proc" not in reply.content.decode()


def test_only_get(client, db):
    assert client.post("/healthz").status_code == 405


def test_probe_over_plain_http_is_not_redirected_to_https(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/accounts/login/").status_code == 301
