"""Probe findings of issue 20 on tokens, artifacts, odd inputs, bonuses and CSV outputs, each reproduced."""
from __future__ import annotations

import json
import re
import time

import pandas as pd
import pytest
from django.core import signing
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from analysis.exports import safe_csv_bytes
from annotation import services
from annotation.artifacts import artifact_store
from annotation.models import Answer, Artifact, Assignment, Bonus, Task, Worker
from annotation.tokens import assignment_token
from tests.conftest import worker_client

GOOD = {"choice": "person", "reason": "a face", "confidence": "4"}


def counts() -> tuple[int, int, int, int]:
    return (Answer.objects.count(), Assignment.objects.exclude(state="assigned").count(), Worker.objects.count(),
            sum(Task.objects.values_list("filled", flat=True)))


@pytest.fixture
def claimed(make_study, make_worker):
    """A live study, a signed-in worker and the assignment they claimed."""
    make_study()
    worker = make_worker()
    client = worker_client(Client, worker)
    assignment = services.assignment_claim_next(worker=worker)
    return client, assignment


def post_answer(client, assignment, data, **extra):
    return client.post(reverse("assignment_page", args=[assignment.pk]), data, **extra)


def test_expired_token_is_refused(claimed, monkeypatch, settings):
    client, assignment = claimed
    token = assignment_token(assignment)
    life = assignment.task.study.assignment_seconds + settings.SALIENT_TOKEN_MARGIN_SECONDS
    now = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now + life + 5)
    before = counts()
    reply = post_answer(client, assignment, {"token": token, **GOOD})
    assert reply.status_code == 403 and "expired" in reply.content.decode()
    assert counts() == before
    monkeypatch.setattr(signing.time, "time", lambda: now + life - 5)
    assert post_answer(client, assignment, {"token": token, **GOOD}).status_code == 302
    assert Answer.objects.count() == 1


def test_internal_pool_token_is_refused_on_the_crowd_site_page(claimed):
    _, assignment = claimed
    before = counts()
    reply = Client().post(reverse("ext_task", args=[assignment.pk]), {"token": assignment_token(assignment), **GOOD})
    assert reply.status_code == 403 and "not valid on this page" in reply.content.decode()
    assert counts() == before and Assignment.objects.get().state == "assigned"


@pytest.mark.parametrize("body, status, words", [
    ({"token": {"a": 1}, **GOOD}, 403, "must be text"),
    ({"token": ["x"], **GOOD}, 403, "must be text"),
    ({"token": 12345, **GOOD}, 403, "must be text"),
], ids=["dict", "list", "number"])
def test_non_string_tokens_are_refused(claimed, body, status, words):
    client, assignment = claimed
    before = counts()
    reply = post_answer(client, assignment, json.dumps(body), content_type="application/json",
                        HTTP_ACCEPT="application/json")
    assert reply.status_code == status and words in reply.content.decode()
    assert counts() == before


def test_deeply_nested_json_gets_a_400(claimed):
    client, assignment = claimed
    before = counts()
    body = "[" * 100_000 + "]" * 100_000
    reply = post_answer(client, assignment, body, content_type="application/json", HTTP_ACCEPT="application/json")
    assert reply.status_code == 400 and "nested too deeply" in reply.content.decode()
    assert counts() == before


@pytest.mark.parametrize("reason", ["a\x00face", "bell\x07", "esc\x1b[31m", "c1\x85"], ids=["nul", "bel", "esc", "c1"])
def test_control_characters_in_text_are_refused_with_a_clear_message(claimed, reason):
    client, assignment = claimed
    before = counts()
    reply = post_answer(client, assignment, json.dumps({"token": assignment_token(assignment), **GOOD,
                                                         "reason": reason}),
                        content_type="application/json", HTTP_ACCEPT="application/json")
    assert reply.status_code == 400
    assert "control character U+" in reply.json()["errors"]["reason"]
    assert counts() == before


def test_tabs_and_newlines_stay_allowed(claimed):
    client, assignment = claimed
    reply = post_answer(client, assignment, {"token": assignment_token(assignment), **GOOD,
                                             "reason": "a\tface\r\nhere"})
    assert reply.status_code == 302
    assert Answer.objects.get().payload["reason"] == "a\tface\r\nhere"


def test_duplicated_form_fields_get_a_400(claimed):
    client, assignment = claimed
    before = counts()
    data = f"token={assignment_token(assignment)}&choice=person&choice=other&confidence=4"
    reply = post_answer(client, assignment, data, content_type="application/x-www-form-urlencoded")
    assert reply.status_code == 400 and "repeated: choice" in reply.content.decode()
    assert counts() == before


def test_a_worker_cannot_read_another_studys_private_artifact(make_study, make_worker,
                                                              other_researcher, researcher_client):
    make_study(name="live one")
    hidden = make_study(name="not launched", images=["camera"], live=False)
    name = hidden.tasks.first().payload["images"][0]
    artifact = Artifact.objects.get(sha256=name.split(".")[0])
    assert not artifact.public
    url = reverse("artifact_file", args=[name])
    worker = make_worker()
    assert worker_client(Client, worker).get(url).status_code == 404
    mallory = Client()
    mallory.force_login(other_researcher)
    assert mallory.get(url).status_code == 404
    assert researcher_client.get(url).status_code == 200
    assert Client().get(url).status_code == 403


def test_a_worker_holding_the_task_sees_its_private_artifact(claimed):
    client, assignment = claimed
    name = assignment.task.payload["images"][0]
    Artifact.objects.filter(sha256=name.split(".")[0]).update(public=False)
    assert client.get(reverse("artifact_file", args=[name])).status_code == 200
    services.assignment_return(assignment_id=assignment.pk, worker=assignment.worker,
                               token=assignment_token(assignment))
    assert client.get(reverse("artifact_file", args=[name])).status_code == 404


def test_missing_artifact_file_is_a_404(make_study, researcher_client):
    study = make_study()
    name = study.tasks.first().payload["images"][0]
    artifact_store().path(name).unlink()
    reply = researcher_client.get(reverse("artifact_file", args=[name]))
    assert reply.status_code == 404 and "missing" in reply.content.decode()


@pytest.fixture
def approved(make_study, make_worker):
    make_study()
    worker = make_worker()
    assignment = services.assignment_claim_next(worker=worker)
    services.assignment_submit(assignment_id=assignment.pk, worker=worker, payload=GOOD,
                               token=assignment_token(assignment))
    return Assignment.objects.get(pk=assignment.pk)


def test_bonus_above_the_cap_is_refused_and_nothing_recorded(approved, researcher_client, settings):
    settings.SALIENT_MAX_BONUS_CENTS = 500
    url = reverse("assignment_bonus", args=[approved.pk])
    for cents in ("99999999999999999999", "501"):
        reply = researcher_client.post(url, {"cents": cents, "reason": "x"})
        assert reply.status_code == 400 and "at most 500 cents" in reply.content.decode()
    assert not Bonus.objects.exists()


def test_bonus_is_recorded_and_shown_on_the_dashboard(approved, researcher_client, researcher):
    reply = researcher_client.post(reverse("assignment_bonus", args=[approved.pk]), {"cents": "25",
                                                                                     "reason": "careful"})
    assert reply.status_code == 302
    bonus = Bonus.objects.get()
    assert (bonus.assignment_id, bonus.paid_by, bonus.cents, bonus.reason) == (approved.pk, researcher, 25, "careful")
    page = researcher_client.get(reverse("study_detail", args=[approved.task.study_id])).content.decode()
    table = re.search(r'<table id="bonus-table">.*?</table>', page, re.S).group(0)
    assert "<td>25</td>" in table and "careful" in table and "alice" in table


def test_kind_output_csv_helper_neutralises_formulas_and_keeps_numbers():
    table = pd.DataFrame({"label": ["=HYPERLINK(1)", "+1", "-x", "@SUM(A1)", "fine"], "score": [-0.5, 1, 2, 3, 4.125]})
    text = safe_csv_bytes(table, float_format="%.2f").decode()
    rows = [line.split(",") for line in text.strip().split("\r\n")[1:]]
    assert [r[0] for r in rows] == ["'=HYPERLINK(1)", "'+1", "'-x", "'@SUM(A1)", "fine"]
    assert [r[1] for r in rows] == ["-0.50", "1.00", "2.00", "3.00", "4.12"]


def test_export_labels_command_neutralises_formulas(make_study, make_worker, tmp_path, settings):
    study = make_study(images=["astronaut"], workers_per_task=1)
    Task.objects.filter(study=study).update(key="=cmd|' /C calc'!A0")
    worker = make_worker()
    assignment = services.assignment_claim_next(worker=worker)
    services.assignment_submit(assignment_id=assignment.pk, worker=worker, payload=GOOD,
                               token=assignment_token(assignment))
    services.study_close(study=study)
    out = tmp_path / "labels.csv"
    call_command("export_labels", study.name, "--out", str(out), "--aggregate")
    text = out.read_text()
    assert "'=cmd|" in text and "\n=cmd" not in text and ",=cmd" not in text
