"""Bounded property-based fuzzing of the answer-submit endpoints: invalid input gets a 4xx and stores nothing.

Each body is invalid by construction (a forged, missing or non-string token, or an answer whose ``choice``
is not one of the study's options), so no example may change a row count or a task's slot counters.
"""
from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from annotation import selectors, services
from annotation.models import Answer, Assignment, ExternalSession, Task, Worker
from annotation.tokens import assignment_token, mturk_claim_token
from tests.conftest import worker_client
from tests.fuzz_helpers import FUZZ, json_values, text

FIELDS = ["token", "choice", "reason", "confidence"]
keys = st.sampled_from(FIELDS) | text


def state() -> tuple:
    return (Answer.objects.count(), Assignment.objects.count(), Worker.objects.count(),
            ExternalSession.objects.count(), tuple(Task.objects.order_by("id").values_list("filled", "approved")),
            tuple(Assignment.objects.order_by("id").values_list("state", flat=True)))


@st.composite
def invalid_bodies(draw, valid_token: str, choices: tuple[str, ...]):
    """A dict body: either a bad token with anything, or the right token with a choice that is not an option."""
    body = draw(st.dictionaries(keys, json_values, max_size=6))
    if draw(st.booleans()):
        body["token"] = valid_token
        body["choice"] = draw(json_values.filter(lambda v: not (isinstance(v, str) and v.strip() in choices)))
    else:
        body["token"] = draw(json_values.filter(lambda v: v != valid_token))
    return body


def form_pairs(body: dict) -> list[tuple[str, str]]:
    return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in body.items()]


def assert_refused(reply, before):
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.content[:300])
    assert state() == before


@pytest.fixture
def pool(make_study, make_worker):
    study = make_study()
    worker = make_worker()
    assignment = services.assignment_claim_next(worker=worker)
    options = tuple(v for v, _ in selectors.study_conf(study=study)["options"])
    return worker_client(Client, worker), assignment, options


@FUZZ
@given(data=st.data())
def test_pool_json_submit_refuses_invalid_bodies(pool, data):
    client, assignment, options = pool
    body = data.draw(invalid_bodies(assignment_token(assignment), options))
    before = state()
    reply = client.post(reverse("assignment_page", args=[assignment.pk]), json.dumps(body),
                        content_type="application/json", HTTP_ACCEPT="application/json")
    assert_refused(reply, before)


@FUZZ
@given(raw=st.binary(max_size=200) | text.map(str.encode))
def test_pool_json_submit_refuses_malformed_bytes(pool, raw):
    client, assignment, _ = pool
    before = state()
    reply = client.post(reverse("assignment_page", args=[assignment.pk]), raw, content_type="application/json",
                        HTTP_ACCEPT="application/json")
    assert_refused(reply, before)


@FUZZ
@given(data=st.data())
def test_pool_form_submit_refuses_invalid_forms(pool, data):
    client, assignment, options = pool
    pairs = form_pairs(data.draw(invalid_bodies(assignment_token(assignment), options)))
    pairs += data.draw(st.lists(st.tuples(st.sampled_from(FIELDS), text), max_size=2))  # maybe repeated fields
    before = state()
    reply = client.post(reverse("assignment_page", args=[assignment.pk]), _urlencode(pairs),
                        content_type="application/x-www-form-urlencoded")
    assert_refused(reply, before)


@FUZZ
@given(reason=text.flatmap(lambda t: st.sampled_from(["\ud800", "\udfff", "a\x00"]).map(lambda bad: t + bad)))
def test_pool_json_submit_refuses_text_postgresql_cannot_store(pool, reason):
    from django.core.cache import cache

    cache.clear()  # the answer rate limit: each example is a first try
    client, assignment, options = pool
    body = {"token": assignment_token(assignment), "choice": options[0], "reason": reason, "confidence": 3}
    before = state()
    reply = client.post(reverse("assignment_page", args=[assignment.pk]), json.dumps(body),
                        content_type="application/json", HTTP_ACCEPT="application/json")
    assert_refused(reply, before)
    assert "reason" in reply.json()["errors"]


@pytest.fixture
def mturk_task(make_study):
    study = make_study(backend="mturk")  # recruitment is not opened: the HIT id is set by hand
    task = study.tasks.order_by("id").first()
    services.task_set_external_id(task=task, external_id="H0")
    claim = mturk_claim_token(task=task, assignment_id="A1", worker_id="W1", submit_to="https://www.mturk.com")
    options = tuple(v for v, _ in selectors.study_conf(study=study)["options"])
    return task, claim, options


@FUZZ
@given(data=st.data())
def test_mturk_submit_refuses_invalid_forms(mturk_task, data):
    task, claim, options = mturk_task
    pairs = form_pairs(data.draw(invalid_bodies(claim, options)))
    before = state()
    reply = Client().post(reverse("mturk_task", args=[task.pk]), _urlencode(pairs),
                          content_type="application/x-www-form-urlencoded")
    assert_refused(reply, before)


def _urlencode(pairs: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    return urlencode(pairs)
