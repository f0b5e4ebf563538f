"""``annotation.tokens`` on its own (no database, milliseconds): what ``make mutation`` runs against the module.
The page-level versions of these attacks are in ``tests/test_token_forgery.py``."""
from __future__ import annotations

import time
import types

import pytest
from django.core import signing

from annotation import tokens
from annotation.errors import Forbidden
from tests.test_token_forgery import forgeries

LIFE, MARGIN = 600, 300


@pytest.fixture(autouse=True)
def _margin(settings):
    settings.SALIENT_TOKEN_MARGIN_SECONDS = MARGIN


def fake_assignment(pk=7, worker_id=3, backend="internal", seconds=LIFE):
    study = types.SimpleNamespace(assignment_seconds=seconds)
    task = types.SimpleNamespace(pk=11, study=study)
    return types.SimpleNamespace(pk=pk, worker_id=worker_id, worker=types.SimpleNamespace(backend=backend),
                                 task=task)


@pytest.fixture
def frozen(monkeypatch):
    now = types.SimpleNamespace(value=time.time())
    monkeypatch.setattr(signing.time, "time", lambda: now.value)
    monkeypatch.setattr(tokens.time, "time", lambda: now.value)
    return now


def test_purpose_follows_the_backend():
    assert tokens.token_purpose(fake_assignment(backend="internal")) == "pool"
    assert tokens.token_purpose(fake_assignment(backend="prolific")) == "ext"
    assert tokens.token_purpose(fake_assignment(backend="mturk")) == "ext"


def test_a_genuine_token_passes_with_and_without_its_purpose(frozen):
    assignment = fake_assignment()
    token = tokens.assignment_token(assignment)
    assert signing.loads(token, salt=tokens.SALT) == {"a": 7, "w": 3, "p": "pool"}
    tokens.assignment_token_check(token=token, assignment=assignment)
    tokens.assignment_token_check(token=token, assignment=assignment, purpose="pool")
    with pytest.raises(Forbidden, match=r"^this assignment token is not valid on this page$"):
        tokens.assignment_token_check(token=token, assignment=assignment, purpose="ext")


@pytest.mark.parametrize("token, message", [(None, "is missing"), ("", "is missing"), (123, "must be text"),
                                            (["x"], "must be text"), ("garbage", "is invalid")])
def test_missing_non_text_and_garbage_tokens_name_the_problem(token, message):
    with pytest.raises(Forbidden, match=rf"^the assignment token {message}$"):
        tokens.assignment_token_check(token=token, assignment=fake_assignment())


def test_every_forgery_is_refused(frozen):
    assignment = fake_assignment()
    genuine = tokens.assignment_token(assignment)
    found = forgeries(genuine, {"a": 7, "w": 3, "p": "pool"}, tokens.SALT, {"a": 8, "w": 4, "p": "ext"})
    for case, forged in found.items():
        with pytest.raises(Forbidden):
            tokens.assignment_token_check(token=forged, assignment=assignment)
            pytest.fail(f"{case} was accepted")


@pytest.mark.parametrize("claim, value", [("a", 8), ("w", 4), ("p", "ext")])
def test_a_claim_changed_by_the_server_key_belongs_to_another_assignment(claim, value):
    assignment = fake_assignment()
    token = signing.dumps({**{"a": 7, "w": 3, "p": "pool"}, claim: value}, salt=tokens.SALT, compress=True)
    with pytest.raises(Forbidden, match=r"^the assignment token belongs to another assignment or worker$"):
        tokens.assignment_token_check(token=token, assignment=assignment)


def test_a_token_lives_the_assignment_time_plus_the_margin(frozen):
    assignment = fake_assignment()
    assert tokens.token_max_age(assignment) == LIFE + MARGIN
    token = tokens.assignment_token(assignment)
    frozen.value += LIFE + MARGIN - 1
    tokens.assignment_token_check(token=token, assignment=assignment)
    frozen.value += 2
    with pytest.raises(Forbidden, match=r"^the assignment token has expired; open the task again$"):
        tokens.assignment_token_check(token=token, assignment=assignment)


def _claim(task, frozen, **kw):
    return tokens.mturk_claim_token(task=task, assignment_id=kw.get("a", "A1"), worker_id=kw.get("w", "W1"),
                                    submit_to=kw.get("s", "https://workersandbox.mturk.com"))


def test_a_genuine_claim_returns_its_pair_and_when_it_was_shown(frozen):
    task = fake_assignment().task
    claim = tokens.mturk_claim_check(token=_claim(task, frozen), task=task)
    assert claim == {"t": 11, "a": "A1", "w": "W1", "s": "https://workersandbox.mturk.com", "at": int(frozen.value)}


def test_every_forged_claim_is_refused(frozen):
    task = fake_assignment().task
    genuine = _claim(task, frozen)
    claims = signing.loads(genuine, salt=tokens.CLAIM_SALT)
    found = forgeries(genuine, claims, tokens.CLAIM_SALT, {"t": 12, "a": "A9", "w": "W9", "s": "https://evil.example",
                                                           "at": claims["at"] - 3600})
    for case, forged in found.items():
        with pytest.raises(Forbidden):
            tokens.mturk_claim_check(token=forged, task=task)
            pytest.fail(f"{case} was accepted")


def test_a_claim_for_another_task_and_an_assignment_token_as_a_claim_are_refused(frozen):
    task = fake_assignment().task
    other = types.SimpleNamespace(pk=12, study=task.study)
    with pytest.raises(Forbidden, match=r"^the assignment token belongs to another task$"):
        tokens.mturk_claim_check(token=_claim(other, frozen), task=task)
    with pytest.raises(Forbidden, match=r"^the assignment token is invalid$"):
        tokens.mturk_claim_check(token=tokens.assignment_token(fake_assignment()), task=task)
    with pytest.raises(Forbidden, match=r"^the assignment token is invalid$"):
        tokens.assignment_token_check(token=_claim(task, frozen), assignment=fake_assignment())


def test_a_claim_lives_the_assignment_time_plus_the_margin(frozen):
    task = fake_assignment().task
    claim = _claim(task, frozen)
    frozen.value += LIFE + MARGIN - 1
    tokens.mturk_claim_check(token=claim, task=task)
    frozen.value += 2
    with pytest.raises(Forbidden, match=r"^the assignment token has expired; open the task again$"):
        tokens.mturk_claim_check(token=claim, task=task)
