"""The study consent text on crowd-site pages: Prolific participants get the consent page before their first
task; MTurk workers (no row before their answer) tick "I agree" on the task page; no answer without agreement."""
from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from annotation import selectors, services
from annotation.errors import Forbidden
from annotation.models import Answer, Assignment, Consent, Study
from annotation.tokens import mturk_claim_check
from tests.mturk_helpers import GOOD, confirms, entry_url
from tests.test_recruiters_prolific import entry

CONSENT = "Researchers at a university ask you to label photos. Contact ethics@example.org."


def token_in(page) -> str:
    return re.search(r'name="token" value="([^"]+)"', page.content.decode()).group(1)


def test_prolific_participant_agrees_or_declines_before_the_first_task(make_study):
    study = make_study(images=["astronaut", "chelsea"], workers_per_task=2, backend="prolific",
                       recruitment={"prolific_study_id": "P1"}, consent_text=CONSENT)
    client = Client(enforce_csrf_checks=True)
    task_url = client.get(entry(study))["Location"]
    page = client.get(task_url)
    assert page.status_code == 200 and "ethics@example.org" in page.content.decode()
    assert 'id="answer-form"' not in page.content.decode()
    pk = int(task_url.split("/")[3])
    token = token_in(page)
    # Answering past the consent page is refused and stores nothing.
    refused = client.post(reverse("ext_task", args=[pk]), {"token": token, **GOOD})
    assert refused.status_code == 403 and not Answer.objects.exists()
    reply = client.post(reverse("ext_consent", args=[pk]), {"token": token, "decision": "agree"})
    assert reply.status_code == 302 and reply["Location"].split("?")[0] == task_url.split("?")[0]
    assert 'id="answer-form"' in client.get(reply["Location"]).content.decode()
    assert client.post(reverse("ext_task", args=[pk]), {"token": token, **GOOD}).status_code == 302
    consent = Consent.objects.get()
    assert consent.agreed and consent.text_sha256 == selectors.consent_text_sha256(CONSENT)

    other = Client(enforce_csrf_checks=True)
    task_url = other.get(entry(study, pid="6a0c0ffee0ddba11c0ffee01", session="S2"))["Location"]
    pk = int(task_url.split("/")[3])
    token = token_in(other.get(task_url))
    reply = other.post(reverse("ext_consent", args=[pk]), {"token": token, "decision": "decline"})
    assert reply.status_code == 200 and "no task of this study" in reply.content.decode()
    assert Assignment.objects.get(pk=pk).state == "returned"
    assert Consent.objects.filter(agreed=False).count() == 1
    assert other.post(reverse("ext_consent", args=[pk]), {"token": "forged", "decision": "agree"}).status_code == 403


def test_mturk_worker_ticks_agreement_with_the_answer(mturk_study, mturk):
    Study.objects.filter(pk=mturk_study.pk).update(consent_text=CONSENT)
    task = mturk_study.tasks.order_by("id").first()
    client = Client(enforce_csrf_checks=True)
    location = client.get(entry_url(task))["Location"]
    page = client.get(location)
    assert 'name="consent"' in page.content.decode() and "ethics@example.org" in page.content.decode()
    token = token_in(page)
    reply = client.post(reverse("mturk_task", args=[task.pk]), {"token": token, **GOOD})
    assert reply.status_code == 400 and 'id="err-consent"' in reply.content.decode()
    assert not Answer.objects.exists()
    # The service refuses too, whatever page sent the answer (the page's check is not the only one).
    confirms(mturk)
    with pytest.raises(Forbidden):
        services.mturk_answer_submit(task=task, claim=mturk_claim_check(token=token, task=task), payload=dict(GOOD))
    assert not Answer.objects.exists() and not Consent.objects.exists()
    confirms(mturk)
    reply = client.post(reverse("mturk_task", args=[task.pk]), {"token": token, "consent": "agree", **GOOD})
    assert reply.status_code == 200
    answer = Answer.objects.get()
    consent = Consent.objects.get()
    assert consent.worker == answer.worker and consent.agreed and consent.study_id == mturk_study.pk


def test_consent_text_is_a_setting_of_the_form_and_the_api(researcher, researcher_client):
    from tests.conftest import SMALL_IMAGES
    from tests.test_api import api_client

    form = {"name": "With consent", "kind": "image_choice", "workers_per_task": 1, "reward_cents": 0,
            "assignment_minutes": 30, "backend": "internal", "consent_text": CONSENT, "s-question": "What is it?",
            "s-options": "person:Person, animal:Animal", "s-images": SMALL_IMAGES[:1], "s-images_per_task": 1,
            "s-image_size": 48}
    assert 'name="consent_text"' in researcher_client.get(reverse("study_create")).content.decode()
    reply = researcher_client.post(reverse("study_create"), form)
    assert reply.status_code == 302, reply.content.decode()[:1000]
    assert Study.objects.get(name="With consent").consent_text == CONSENT
    reply = api_client(researcher).post("/api/studies", {
        "name": "API consent", "kind": "image_choice", "consent_text": CONSENT,
        "settings": {"images": SMALL_IMAGES[:1], "image_size": 48}}, content_type="application/json")
    assert reply.status_code == 201 and reply.json()["consent_text"] == CONSENT
    assert Study.objects.get(name="API consent").consent_text == CONSENT
