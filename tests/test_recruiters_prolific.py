"""Prolific-style links: entry parameters, tasks one by one, the completion redirect, one start per participant."""
from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from annotation.models import Answer, Assignment, ExternalSession, Worker
from annotation.recruiters import by_name
from annotation.services import assignment_claim_next

GOOD = {"choice": "person", "reason": "seen", "confidence": "3"}


def entry(study, pid="5f0c0ffee0ddba11c0ffee00", session="S1", study_id="P1"):
    query = urlencode({"PROLIFIC_PID": pid, "STUDY_ID": study_id, "SESSION_ID": session})
    return reverse("prolific_entry", args=[study.pk]) + "?" + query


def answer(client, location):
    page = client.get(location)
    assert page.status_code == 200
    token = re.search(r'name="token" value="([^"]+)"', page.content.decode()).group(1)
    pk = int(location.split("/")[3])
    return client.post(reverse("ext_task", args=[pk]), {"token": token, **GOOD})


def token_claims(location: str) -> dict:
    """What the signed ``?t=`` token of a task link names (assignment, worker, purpose)."""
    from urllib.parse import parse_qs, urlsplit

    from django.core import signing

    from annotation.tokens import SALT

    return signing.loads(parse_qs(urlsplit(location).query)["t"][0], salt=SALT)


@pytest.fixture
def prolific_study(make_study):
    return make_study(images=["astronaut", "chelsea", "coffee"], workers_per_task=2, backend="prolific",
                      max_tasks_per_worker=2, completion_code="C0DE42", recruitment={"prolific_study_id": "P1"})


def test_participant_answers_up_to_the_cap_then_is_sent_to_prolific(prolific_study):
    client = Client(enforce_csrf_checks=True)
    reply = client.get(entry(prolific_study))
    assert reply.status_code == 302 and reply["Location"].startswith("/ext/a/")
    reply = answer(client, reply["Location"])
    assert reply.status_code == 302 and reply["Location"].startswith("/ext/a/")  # the next task
    reply = answer(client, reply["Location"])
    assert reply.status_code == 302
    assert reply["Location"] == "https://app.prolific.com/submissions/complete?cc=C0DE42"
    worker = Worker.objects.get(backend="prolific")
    assert worker.external_id == "5f0c0ffee0ddba11c0ffee00" and worker.user is None
    assert Answer.objects.filter(worker=worker).count() == 2
    session = ExternalSession.objects.get()
    assert (session.session_id, session.external_study_id) == ("S1", "P1") and session.completed_at is not None


def test_the_same_participant_cannot_start_twice(prolific_study):
    first = Client().get(entry(prolific_study))
    assert first.status_code == 302
    # Reloading the same session resumes the same task (a token for the same assignment, signed anew) ...
    again = Client().get(entry(prolific_study))["Location"]
    assert again.split("?")[0] == first["Location"].split("?")[0]
    assert token_claims(again) == token_claims(first["Location"])
    # ... but a new session of the same participant is refused, and changes nothing.
    reply = Client().get(entry(prolific_study, session="S2"), HTTP_ACCEPT="application/json")
    assert reply.status_code == 409 and "already started" in reply.json()["error"]
    assert Assignment.objects.count() == 1 and ExternalSession.objects.count() == 1
    # After completing, even the same session cannot start again.
    answer(Client(), first["Location"])
    ExternalSession.objects.update(completed_at="2030-01-01T00:00:00Z")
    assert Client().get(entry(prolific_study)).status_code == 409


@pytest.mark.parametrize("params, status", [
    ({"PROLIFIC_PID": "", "STUDY_ID": "P1", "SESSION_ID": "S1"}, 400),
    ({"PROLIFIC_PID": "abc", "STUDY_ID": "P1"}, 400),
    ({"PROLIFIC_PID": "abc def", "STUDY_ID": "P1", "SESSION_ID": "S1"}, 400),
    ({"PROLIFIC_PID": "abc", "STUDY_ID": "OTHER", "SESSION_ID": "S1"}, 403),
])
def test_bad_entry_links_are_refused(prolific_study, params, status):
    url = reverse("prolific_entry", args=[prolific_study.pk]) + "?" + urlencode(params)
    assert Client().get(url).status_code == status
    assert not Worker.objects.filter(backend="prolific").exists()
    assert not Assignment.objects.exists()


def test_links_of_other_backends_or_closed_studies_are_refused(make_study, prolific_study):
    from annotation.services import study_close

    internal = make_study(name="internal one")
    assert Client().get(entry(internal)).status_code == 404
    study_close(study=prolific_study)
    assert Client().get(entry(prolific_study)).status_code == 409


def test_pool_workers_never_get_prolific_tasks_and_vice_versa(prolific_study, make_worker):
    internal = make_worker()
    assert assignment_claim_next(worker=internal) is None
    Client().get(entry(prolific_study))
    participant = Worker.objects.get(backend="prolific")
    assert Assignment.objects.get(worker=participant).task.study_id == prolific_study.pk


def test_participant_with_no_task_left_gets_no_completion_code(make_study):
    study = make_study(images=["astronaut"], workers_per_task=1, backend="prolific",
                       recruitment={"prolific_study_id": "P1"})
    answer(Client(), Client().get(entry(study, pid="first"))["Location"])
    reply = Client().get(entry(study, pid="second"))
    assert reply.status_code == 409 and "cc=" not in reply.content.decode()


def test_prolific_bonus_says_where_to_pay(prolific_study, researcher):
    from annotation.errors import ApplicationError

    with pytest.raises(ApplicationError, match="Prolific's dashboard"):
        by_name("prolific").pay_bonus(None, 10, "thanks")


def test_study_page_shows_the_prolific_url_and_code(prolific_study, researcher, settings):
    settings.SALIENT_PUBLIC_URL = "https://studio.example.org"
    client = Client()
    client.force_login(researcher)
    body = client.get(reverse("study_detail", args=[prolific_study.pk])).content.decode()
    assert (f"https://studio.example.org/ext/prolific/{prolific_study.pk}/?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
            "&amp;STUDY_ID={{%STUDY_ID%}}&amp;SESSION_ID={{%SESSION_ID%}}") in body
    assert "C0DE42" in body
