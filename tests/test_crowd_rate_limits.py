"""Abuse limits on crowd-site entry (per address) and answer posts (per worker): 429, nothing stored (issue 19)."""
from __future__ import annotations

import types

import pytest
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.models import Answer, Assignment, Worker
from annotation.tokens import assignment_token
from studio.ratelimits import ANSWER_MESSAGE, ENTRY_MESSAGE
from tests.mturk_helpers import GOOD, entry_url

LIMIT = 3


@pytest.fixture(autouse=True)
def small_limits(settings, monkeypatch):
    settings.SALIENT_CROWD_ENTRY_RATE = settings.SALIENT_ANSWER_RATE = f"{LIMIT}/m"
    now = types.SimpleNamespace(value=1_900_000_000.0)  # one frozen window
    monkeypatch.setattr("django_ratelimit.core.time", types.SimpleNamespace(time=lambda: now.value))


def test_settings_have_defaults(settings):
    from studio import settings as defaults

    assert defaults.SALIENT_CROWD_ENTRY_RATE == defaults.SALIENT_ANSWER_RATE == "30/m"


def test_entry_beyond_the_limit_from_one_address_gets_429(mturk_study):
    task = mturk_study.tasks.order_by("id").first()
    client = Client(REMOTE_ADDR="10.0.0.7")
    for i in range(LIMIT):
        assert client.get(entry_url(task, assignmentId=f"A{i}", workerId=f"W{i}")).status_code == 302
    reply = client.get(entry_url(task, assignmentId="A9", workerId="W9"))
    assert reply.status_code == 429 and ENTRY_MESSAGE in reply.content.decode() and reply["Retry-After"]
    assert Client(REMOTE_ADDR="10.0.0.8").get(entry_url(task, assignmentId="A9", workerId="W9")).status_code == 302


def test_prolific_entry_is_limited_too(make_study):
    study = make_study(backend="prolific", recruitment={"prolific_study_id": "P1"})
    url = reverse("prolific_entry", args=[study.pk]) + "?PROLIFIC_PID=x{}&STUDY_ID=P1&SESSION_ID=s{}"
    client = Client(REMOTE_ADDR="10.0.0.7")
    for i in range(LIMIT):
        client.get(url.format(i, i))
    workers = Worker.objects.count()
    assert client.get(url.format(9, 9)).status_code == 429 and Worker.objects.count() == workers


def test_answers_beyond_the_limit_per_worker_get_429_and_store_nothing(make_study, make_worker):
    make_study(images=["astronaut", "chelsea", "coffee", "camera", "rocket"], workers_per_task=1)
    worker = make_worker()
    client = Client()
    client.force_login(worker.user)
    for _ in range(LIMIT):
        a = services.assignment_claim_next(worker=worker)
        reply = client.post(reverse("assignment_page", args=[a.pk]), {"token": assignment_token(a), **GOOD})
        assert reply.status_code == 302
    a = services.assignment_claim_next(worker=worker)
    reply = client.post(reverse("assignment_page", args=[a.pk]), {"token": assignment_token(a), **GOOD})
    assert reply.status_code == 429 and ANSWER_MESSAGE in reply.content.decode()
    assert Answer.objects.count() == LIMIT and Assignment.objects.get(pk=a.pk).state == "assigned"
    other = make_worker()  # another worker is not held back
    b = services.assignment_claim_next(worker=other)
    other_client = Client()
    other_client.force_login(other.user)
    assert other_client.post(reverse("assignment_page", args=[b.pk]),
                             {"token": assignment_token(b), **GOOD}).status_code == 302
