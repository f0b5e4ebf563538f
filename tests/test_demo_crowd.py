"""The demo's simulated crowd: one password hash for all its accounts, sessions without a sign-in per worker,
and every answer still through the real views."""
from django.contrib.auth.hashers import MD5PasswordHasher
from django.test import Client

from annotation.models import Answer
from demo.harness import answer_all


def test_the_crowd_costs_one_password_hash_and_answers_over_http(live_server, make_study, monkeypatch):
    study = make_study(images=["astronaut", "chelsea"], workers_per_task=3)
    hashed = []
    encode = MD5PasswordHasher.encode
    monkeypatch.setattr(MD5PasswordHasher, "encode",
                        lambda self, password, salt: hashed.append(password) or encode(self, password, salt))

    given = answer_all(live_server.url, workers=3, accuracy=1.0, seed=0, password="crowd-pass-1")

    assert given == 6 == Answer.objects.filter(task__study=study).count()
    assert set(Answer.objects.values_list("worker__user__username", flat=True)) == {"demo-sim1", "demo-sim2",
                                                                                     "demo-sim3"}
    assert hashed == ["crowd-pass-1"]  # one hash for the three new accounts, none to sign them in
    assert Client().login(username="demo-sim2", password="crowd-pass-1")  # a person can still sign in as one


def test_the_demo_server_sends_without_waiting_for_delayed_acks(transactional_db, monkeypatch):
    """Each connection of the demo's server has TCP_NODELAY: without it every response stalls ~40 ms on loopback
    (Nagle's algorithm holds the handler's second small send until the client's delayed ACK)."""
    import socket

    import requests

    from demo import live_server

    seen = []
    setup = live_server._QuietHandler.setup

    def recording_setup(self):
        setup(self)
        seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(live_server._QuietHandler, "setup", recording_setup)
    with live_server.serving() as base:
        assert requests.get(f"{base}/accounts/login/", timeout=30).status_code == 200
    assert seen and all(seen), seen
