"""Tests that fail when a token defence is removed (issue 29): tokens signed with another key or salt, with the
signature stripped or altered, with a claim changed (re-signed or not), and expired -- on the pool's pages,
the crowd-site ``/ext/a/…`` pages and the MTurk claim. Each page also takes its genuine token, so a check that
refuses everything would fail here too."""
from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.models import Answer, Assignment
from annotation.tokens import CLAIM_SALT, SALT, assignment_token, mturk_claim_token
from tests.conftest import worker_client
from tests.mturk_helpers import GOOD

OTHER_KEY = "not-the-server-key-" * 4


def _parts(token: str) -> tuple[str, str, str]:
    payload, stamp, signature = token.rsplit(":", 2)
    return payload, stamp, signature


def _flip(text: str) -> str:
    return text[:-1] + ("A" if text[-1] != "A" else "B")


def forgeries(genuine: str, claims: dict, salt: str, changes: dict) -> dict[str, str]:
    """Forged versions of ``genuine`` (whose content is ``claims``); ``changes``: claim -> another value."""
    payload, stamp, signature = _parts(genuine)
    found = {
        "another key": signing.dumps(claims, key=OTHER_KEY, salt=salt, compress=True),
        "another salt": signing.dumps(claims, salt=salt + ".other", compress=True),
        "signature stripped": f"{payload}:{stamp}",
        "signature empty": f"{payload}:{stamp}:",
        "signature altered": f"{payload}:{stamp}:{_flip(signature)}",
        "timestamp altered": f"{payload}:{_flip(stamp)}:{signature}",
        "payload only": payload,
        "unsigned json": signing.b64_encode(signing.JSONSerializer().dumps(claims)).decode(),
    }
    for claim, value in changes.items():
        changed = {**claims, claim: value}
        forged_payload, _, _ = _parts(signing.dumps(changed, salt=salt, compress=True))
        found[f"{claim} changed, signature kept"] = f"{forged_payload}:{stamp}:{signature}"
        found[f"{claim} changed, other key"] = signing.dumps(changed, key=OTHER_KEY, salt=salt, compress=True)
    return found


def _claims_of(assignment) -> dict:
    return signing.loads(assignment_token(assignment), salt=SALT)


@pytest.fixture
def pool(make_study, make_worker):
    make_study()
    worker, other = make_worker(), make_worker()
    client = worker_client(Client, worker)
    assignment = services.assignment_claim_next(worker=worker)
    mine = services.assignment_claim_next(worker=other)
    return client, assignment, mine


def pool_post(client, assignment, token):
    return client.post(reverse("assignment_page", args=[assignment.pk]), {"token": token, **GOOD})


def _pool_cases():
    return ["another key", "another salt", "signature stripped", "signature empty", "signature altered",
            "timestamp altered", "payload only", "unsigned json", "a changed, signature kept", "a changed, other key",
            "w changed, signature kept", "w changed, other key", "p changed, signature kept", "p changed, other key"]


@pytest.mark.parametrize("case", _pool_cases())
def test_a_forged_token_is_refused_on_the_pool_answer_page(pool, case):
    client, assignment, other = pool
    claims = _claims_of(assignment)
    forged = forgeries(assignment_token(assignment), claims, SALT,
                       {"a": other.pk, "w": other.worker_id, "p": "ext"})[case]
    reply = pool_post(client, assignment, forged)
    assert reply.status_code == 403, case
    assert not Answer.objects.exists() and Assignment.objects.get(pk=assignment.pk).state == "assigned"
    returned = client.post(reverse("assignment_return", args=[assignment.pk]), {"token": forged})
    assert returned.status_code == 403 and Assignment.objects.get(pk=assignment.pk).state == "assigned"
    assert pool_post(client, assignment, assignment_token(assignment)).status_code == 302  # the genuine one works


@pytest.mark.parametrize("claim", ["a", "w", "p"])
def test_each_claim_changed_and_signed_with_the_servers_key_is_refused(pool, claim):
    """Even a correctly signed token is refused when one claim names another assignment, worker or purpose."""
    client, assignment, other = pool
    changed = {**_claims_of(assignment), claim: {"a": other.pk, "w": other.worker_id, "p": "ext"}[claim]}
    reply = pool_post(client, assignment, signing.dumps(changed, salt=SALT, compress=True))
    assert reply.status_code == 403 and not Answer.objects.exists()


def test_an_expired_pool_token_is_refused_and_a_fresh_one_is_not(pool, monkeypatch, settings):
    client, assignment, _ = pool
    token = assignment_token(assignment)
    life = assignment.task.study.assignment_seconds + settings.SALIENT_TOKEN_MARGIN_SECONDS
    now = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now + life + 2)
    assert pool_post(client, assignment, token).status_code == 403 and not Answer.objects.exists()
    monkeypatch.setattr(signing.time, "time", lambda: now + life - 2)
    assert pool_post(client, assignment, token).status_code == 302


@pytest.fixture
def external(make_study):
    """A Prolific participant's assignment (``/ext/a/…`` pages) and a second participant's."""
    study = make_study(backend="prolific", recruitment={"prolific_study_id": "P1"}, workers_per_task=2)
    found = []
    for pid, session in (("participant0000001", "S1"), ("participant0000002", "S2")):
        query = urlencode({"PROLIFIC_PID": pid, "STUDY_ID": "P1", "SESSION_ID": session})
        location = Client().get(reverse("prolific_entry", args=[study.pk]) + "?" + query)["Location"]
        found.append(Assignment.objects.get(pk=int(location.split("/")[3])))
    return found


@pytest.mark.parametrize("case", _pool_cases())
def test_a_forged_token_is_refused_on_the_crowd_site_pages(external, case):
    assignment, other = external
    forged = forgeries(assignment_token(assignment), _claims_of(assignment), SALT,
                       {"a": other.pk, "w": other.worker_id, "p": "pool"})[case]
    url = reverse("ext_task", args=[assignment.pk])
    assert Client().get(url, {"t": forged}).status_code == 403, case
    assert Client().post(url, {"token": forged, **GOOD}).status_code == 403, case
    assert not Answer.objects.exists()
    genuine = assignment_token(assignment)
    assert Client().get(url, {"t": genuine}).status_code == 200
    assert Client().post(url, {"token": genuine, **GOOD}).status_code == 302


def test_an_expired_crowd_site_token_is_refused(external, monkeypatch, settings):
    assignment, _ = external
    token = assignment_token(assignment)
    life = assignment.task.study.assignment_seconds + settings.SALIENT_TOKEN_MARGIN_SECONDS
    now = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now + life + 2)
    url = reverse("ext_task", args=[assignment.pk])
    assert Client().get(url, {"t": token}).status_code == 403
    assert Client().post(url, {"token": token, **GOOD}).status_code == 403 and not Answer.objects.exists()


def _claim_cases():
    return ["another key", "another salt", "signature stripped", "signature empty", "signature altered",
            "timestamp altered", "payload only", "unsigned json", "t changed, signature kept", "t changed, other key",
            "a changed, signature kept", "w changed, signature kept", "s changed, signature kept",
            "at changed, signature kept"]


@pytest.mark.parametrize("case", _claim_cases())
def test_a_forged_mturk_claim_is_refused(mturk_study, mturk, case):
    first, second = mturk_study.tasks.order_by("id")
    genuine = mturk_claim_token(task=first, assignment_id="A1", worker_id="W1",
                                submit_to="https://workersandbox.mturk.com")
    claims = signing.loads(genuine, salt=CLAIM_SALT)
    forged = forgeries(genuine, claims, CLAIM_SALT, {"t": second.pk, "a": "A9", "w": "W9",
                                                      "s": "https://evil.example", "at": claims["at"] - 3600})[case]
    url = reverse("mturk_task", args=[first.pk])
    assert Client().get(url, {"t": forged}).status_code == 403, case
    assert Client().post(url, {"token": forged, **GOOD}).status_code == 403, case
    assert not Answer.objects.exists() and not Assignment.objects.exists()
    assert Client().get(url, {"t": genuine}).status_code == 200


def test_a_claim_of_another_hit_signed_by_the_server_is_refused(mturk_study):
    first, second = mturk_study.tasks.order_by("id")
    claim = mturk_claim_token(task=second, assignment_id="A1", worker_id="W1",
                              submit_to="https://workersandbox.mturk.com")
    assert Client().get(reverse("mturk_task", args=[first.pk]), {"t": claim}).status_code == 403


def test_an_expired_mturk_claim_is_refused(mturk_study, monkeypatch, settings):
    first = mturk_study.tasks.order_by("id").first()
    claim = mturk_claim_token(task=first, assignment_id="A1", worker_id="W1",
                              submit_to="https://workersandbox.mturk.com")
    life = mturk_study.assignment_seconds + settings.SALIENT_TOKEN_MARGIN_SECONDS
    now = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now + life + 2)
    url = reverse("mturk_task", args=[first.pk])
    assert Client().get(url, {"t": claim}).status_code == 403
    assert Client().post(url, {"token": claim, **GOOD}).status_code == 403 and not Assignment.objects.exists()
    monkeypatch.setattr(signing.time, "time", lambda: now + life - 2)
    assert Client().get(url, {"t": claim}).status_code == 200
