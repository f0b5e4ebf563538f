"""Abuse limits: sign-ups per address, failed sign-ins per address and per user name (429, nothing stored)."""
from __future__ import annotations

import re
import types

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from annotation.models import Worker
from studio.ratelimits import LOGIN_MESSAGE, SIGNUP_MESSAGE
from tests.conftest import PASSWORD

LIMIT = 10  # the default SALIENT_SIGNUP_RATE and SALIENT_LOGIN_FAILURE_RATE: 10/m


@pytest.fixture
def clock(monkeypatch):
    """django-ratelimit's clock, frozen (so a test never straddles two windows) and movable."""
    now = types.SimpleNamespace(value=1_900_000_000.0)
    monkeypatch.setattr("django_ratelimit.core.time", types.SimpleNamespace(time=lambda: now.value))
    return now


def sign_up(name: str, address: str = "10.0.0.1"):
    return Client(REMOTE_ADDR=address).post(reverse("worker_signup"), {"username": name, "password": PASSWORD})


def test_settings_name_the_default_limits(settings):
    assert settings.SALIENT_SIGNUP_RATE == settings.SALIENT_LOGIN_FAILURE_RATE == f"{LIMIT}/m"


def test_eleventh_signup_from_one_address_in_a_minute_gets_429_and_stores_nothing(db, clock):
    for i in range(LIMIT):
        assert sign_up(f"crowd{i}").status_code == 302, f"sign-up {i + 1} was refused"
    users, workers = User.objects.count(), Worker.objects.count()
    reply = sign_up("crowd-eleven")
    assert reply.status_code == 429
    assert SIGNUP_MESSAGE in reply.content.decode() and int(reply["Retry-After"]) > 0
    assert (User.objects.count(), Worker.objects.count()) == (users, workers)
    assert not User.objects.filter(username="crowd-eleven").exists()
    assert sign_up("from-elsewhere", address="10.0.0.2").status_code == 302
    clock.value += 60
    assert sign_up("next-minute").status_code == 302


def test_signup_limit_is_a_setting(db, clock, settings):
    settings.SALIENT_SIGNUP_RATE = "2/m"
    assert [sign_up(f"limited{i}").status_code for i in range(3)] == [302, 302, 429]


def test_the_signup_form_itself_is_not_counted(db, clock):
    client = Client(REMOTE_ADDR="10.0.0.1")
    assert all(client.get(reverse("worker_signup")).status_code == 200 for _ in range(LIMIT + 2))
    assert sign_up("after-looking").status_code == 302


def login(path: str, username: str, password: str, address: str) -> tuple[int, str, bool]:
    client = Client(REMOTE_ADDR=address)
    reply = client.post(path, {"username": username, "password": password})
    return reply.status_code, reply.content.decode(), "_auth_user_id" in client.session


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_eleventh_wrong_login_in_a_minute_is_throttled_even_with_the_right_password(db, clock, path):
    User.objects.create_superuser("alice", password=PASSWORD)
    for _ in range(LIMIT):
        status, _, signed_in = login(path, "alice", "wrong-password", "10.0.0.1")
        assert status == 200 and not signed_in
    status, body, signed_in = login(path, "alice", PASSWORD, "10.0.0.1")
    assert status == 429 and not signed_in and LOGIN_MESSAGE in body
    clock.value += 60
    assert login(path, "alice", PASSWORD, "10.0.0.1")[0] == 302


def test_throttling_does_not_tell_whether_an_account_exists(db, clock):
    User.objects.create_user("alice", password=PASSWORD)
    seen = {}
    for name, address in [("alice", "10.0.0.1"), ("nobody", "10.0.0.2")]:
        seen[name] = [login("/accounts/login/", name, "wrong-password", address)[:2] for _ in range(LIMIT + 1)]
    assert [s for s, _ in seen["alice"]] == [s for s, _ in seen["nobody"]] == [200] * LIMIT + [429]
    assert seen["alice"][-1][1] == seen["nobody"][-1][1]
    first = [re.sub(r'value="[^"]*"', "", body) for _, body in (seen["alice"][0], seen["nobody"][0])]
    assert first[0] == first[1]  # the same page, bar the CSRF token and the name typed in


def test_one_account_guessed_from_many_addresses_is_throttled(db, clock):
    User.objects.create_user("alice", password=PASSWORD)
    for i in range(LIMIT):
        assert login("/accounts/login/", "alice", "wrong-password", f"10.0.1.{i}")[0] == 200
    assert login("/accounts/login/", "Alice", PASSWORD, "10.0.2.1")[0] == 429
    User.objects.create_user("bob", password=PASSWORD)
    assert login("/accounts/login/", "bob", PASSWORD, "10.0.2.1")[0] == 302


def test_successful_logins_are_not_counted(db, clock):
    User.objects.create_user("alice", password=PASSWORD)
    assert {login("/accounts/login/", "alice", PASSWORD, "10.0.0.1")[0] for _ in range(LIMIT + 3)} == {302}


def test_an_unreachable_cache_does_not_take_sign_in_down(db, clock, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0"}}
    User.objects.create_user("alice", password=PASSWORD)
    assert login("/accounts/login/", "alice", PASSWORD, "10.0.0.1")[0] == 302


LOOK_ALIKES = ["ｂｏｂ", "𝐛𝐨𝐛", "𝒃𝒐𝒃", "𝓫𝓸𝓫", "𝔟𝔬𝔟", "BOB", "Ｂｏｂ", "ᵇᵒᵇ"]


def test_look_alike_spellings_of_a_name_share_one_counter(db, clock):
    """Fullwidth, mathematical and upper-case spellings of ``bob`` sign in as bob, so they count as bob."""
    User.objects.create_user("bob", password=PASSWORD)
    assert login("/accounts/login/", "ｂｏｂ", PASSWORD, "10.0.3.1")[2]  # Django's login form applies NFKC
    for i in range(LIMIT):
        name = LOOK_ALIKES[i % len(LOOK_ALIKES)]
        assert login("/accounts/login/", name, "wrong-password", f"10.0.4.{i}")[0] == 200
    for name in ["bob", *LOOK_ALIKES]:
        status, _, signed_in = login("/accounts/login/", name, PASSWORD, "10.0.5.1")
        assert status == 429 and not signed_in, name


def test_the_embedded_default_cache_counts_across_processes(db, clock, settings, tmp_path):
    """Failures counted by another process (another gunicorn worker) throttle this one: without CACHE_URL the
    limits live in a cache every process of the host shares."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k not in ("CACHE_URL", "DATABASE_URL")}
    env.update(SALIENT_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="studio.settings")
    script = "\n".join([
        "import django, json, types; django.setup()",
        "from django.conf import settings; print(json.dumps(settings.CACHES['default']))",
        f"from django_ratelimit import core; core.time = types.SimpleNamespace(time=lambda: {clock.value!r})",
        "from django.test import RequestFactory",
        "from studio.ratelimits import LOGIN_COUNTERS, _usage",
        f"for i in range({LIMIT}):",
        "    request = RequestFactory().post('/accounts/login/', {'username': 'carol'}, REMOTE_ADDR=f'10.0.6.{i}')",
        "    for group, key in LOGIN_COUNTERS:",
        "        _usage(request, group=group, key=key, rate=settings.SALIENT_LOGIN_FAILURE_RATE, increment=True)",
    ])
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    settings.CACHES = {"default": json.loads(done.stdout.strip().splitlines()[0])}  # the other process's cache
    User.objects.create_user("carol", password=PASSWORD)
    assert login("/accounts/login/", "carol", PASSWORD, "10.0.7.1")[0] == 429
