"""Worker task pages in Chromium: keyboard answering (confidence keys), errors beside their field, the next
task straight after an answer, the study facts and local due time, the consent page, layout on desktop and phone."""
import csv
import io
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from annotation import selectors
from annotation.models import Answer, Assignment, Consent
from tests.study_helpers import sign_in
from tests.browser_warmup import page  # noqa: F401 - the warmed-up page of these tests

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
CONSENT = "You will label images.\nYour answers are stored without your name. Contact: ethics@example.org"




def assignment_id(page) -> int:
    return int(page.url.rstrip("/").split("/")[-1])


def test_keyboard_answers_first_time_then_the_next_task_opens(live_server, page, make_study, make_worker):
    study = make_study(name="Faces", images=["astronaut", "chelsea", "coffee"], workers_per_task=1, reward_cents=12)
    worker = make_worker("kbd")
    page.set_viewport_size(DESKTOP)
    sign_in(page, live_server.url, "kbd")
    page.click("#next-task")
    page.wait_for_selector("#answer-form img")
    first = assignment_id(page)
    facts = page.inner_text("#task-facts")
    assert "Faces" in facts and "3 tasks left" in facts and "12¢" in facts
    due = page.locator("#task-due")
    assert "your time" in due.inner_text() and due.get_attribute("datetime").startswith("20")
    assert due.get_attribute("title").endswith("UTC")  # the server's time stays as the hover text
    assert "required" in page.inner_text("#field-confidence legend")
    assert page.is_visible("#field-confidence kbd")  # the confidence keys are shown on a desktop

    # Keyboard only, first time: 2 picks the second option, 4 the confidence, Enter submits.
    page.keyboard.press("2")
    assert "Confidence" in page.inner_text("#keys-now")
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Answer saved")
    page.wait_for_selector("#answer-form img")  # the next task, without pressing "Next task"
    assert assignment_id(page) != first
    answer = Answer.objects.get(assignment_id=first)
    assert answer.payload["confidence"] == 4 and answer.payload["choice"] == answer.task.payload["options"][1][0]
    assert "2 tasks left" in page.inner_text("#task-facts")

    # "Submit and stop" saves the answer and goes back to the worker's page.
    page.keyboard.press("1")
    page.keyboard.press("3")
    with page.expect_navigation():
        page.click("#submit-stop")
    assert page.url == live_server.url + reverse("worker_home")  # not the next task
    assert page.locator("#answer-form").count() == 0
    page.wait_for_selector("#done-count")
    assert page.inner_text("#done-count") == "2"
    assert Answer.objects.filter(worker=worker).count() == 2
    assert not Assignment.objects.filter(worker=worker, state="assigned").exists()
    assert study.tasks.count() == 3


def test_the_due_time_shows_in_the_workers_own_time_zone(live_server, page, browser, make_study, make_worker):
    """A worker in India (UTC+5:30, so neither the hour nor the minutes match UTC) reads the due time in their own
    clock; the server's "HH:MM UTC" stays as the hover text."""
    make_study(images=["astronaut"], workers_per_task=1)
    worker = make_worker("kolkata")
    context = browser.new_context(timezone_id="Asia/Kolkata", locale="en-GB")
    try:
        local = context.new_page()
        local.set_default_timeout(180_000)
        sign_in(local, live_server.url, "kolkata")
        local.click("#next-task")
        local.wait_for_selector("#answer-form img")
        expires = Assignment.objects.get(worker=worker).expires_at
        due = local.locator("#task-due")
        assert due.inner_text() == expires.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%H:%M") + " your time"
        assert due.get_attribute("title") == expires.astimezone(ZoneInfo("UTC")).strftime("%H:%M") + " UTC"
    finally:
        context.close()


def test_an_invalid_answer_shows_its_error_beside_the_field(live_server, page, make_study, make_worker):
    make_study(images=["astronaut"], workers_per_task=1)
    make_worker("typo")
    page.set_viewport_size(PHONE)
    sign_in(page, live_server.url, "typo")
    page.click("#next-task")
    page.wait_for_selector("#answer-form img")
    page.keyboard.press("1")  # the answer only, no confidence
    page.click("#submit-answer")
    page.wait_for_selector("#error-summary")
    beside = page.locator("#field-confidence .field-error")
    assert beside.is_visible() and "required" in beside.inner_text()
    assert page.locator("#field-choice .field-error").count() == 0
    summary = page.inner_text("#error-summary")
    assert "Confidence: this field is required" in summary and "confidence:" not in summary  # in words
    assert page.get_attribute("#error-summary a", "href") == "#field-confidence"
    assert page.is_checked("input[name=choice][value=person]")  # what was chosen stays chosen
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_keyboard_hints_show_on_desktop_only(live_server, page, make_study, make_worker):
    make_study(images=["astronaut"], workers_per_task=1)
    make_worker("hint")
    sign_in(page, live_server.url, "hint")
    page.click("#next-task")
    page.wait_for_selector("#answer-form img")
    shown = "() => Array.from(document.querySelectorAll('#answer-form kbd')).filter(k => k.offsetParent).length"
    page.set_viewport_size(DESKTOP)
    assert page.evaluate(shown) > 0
    page.set_viewport_size(PHONE)
    assert page.evaluate(shown) == 0
    assert not page.is_visible("#keys-now")


def test_consent_shows_once_is_recorded_and_exported_and_declining_gives_no_task(
        live_server, page, make_study, make_worker, researcher_client):
    study = make_study(name="Ethics", images=["astronaut", "chelsea"], workers_per_task=2, consent_text=CONSENT)
    make_worker("yes")
    no = make_worker("no")
    base = live_server.url
    page.set_viewport_size(PHONE)
    sign_in(page, base, "yes")
    page.click("#next-task")
    page.wait_for_selector("#consent-text, #answer-form")
    assert page.locator("#consent-text").count() == 1
    assert "ethics@example.org" in page.inner_text("#consent-text")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert not Answer.objects.exists()
    page.click("#consent-agree")
    page.wait_for_selector("#answer-form img")
    consent = Consent.objects.get(worker__user__username="yes")
    assert consent.agreed and consent.text_sha256 == selectors.consent_text_sha256(CONSENT)
    page.keyboard.press("1")
    page.keyboard.press("5")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Answer saved")
    page.wait_for_selector("#answer-form img")  # the second task of the study: no consent page again
    assert page.locator("#consent-text").count() == 0

    rows = list(csv.DictReader(io.StringIO(
        researcher_client.get(reverse("study_export", args=[study.pk, "consent.csv"])).content.decode())))
    assert [(r["worker"], r["agreed"], r["text_sha256"]) for r in rows] == [
        ("yes", "yes", selectors.consent_text_sha256(CONSENT))]
    assert rows[0]["answered_at"].startswith(str(consent.created_at.year))
    text = researcher_client.get(reverse("study_export", args=[study.pk, "consent.txt"])).content.decode()
    assert text == CONSENT

    page.context.clear_cookies()
    sign_in(page, base, "no")
    page.click("#next-task")
    page.wait_for_selector("#consent-text, #answer-form")
    assert page.locator("#consent-text").count() == 1
    held = Assignment.objects.get(worker=no)
    page.click("#consent-decline")
    page.wait_for_selector("text=You declined")
    assert not Consent.objects.get(worker=no).agreed
    held.refresh_from_db()
    assert held.state == "returned" and not Answer.objects.filter(worker=no).exists()
    page.click("#next-task")  # no task of the declined study is offered again
    page.wait_for_selector("text=No task is available")
    assert Assignment.objects.filter(worker=no).count() == 1
