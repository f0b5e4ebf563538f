"""A real browser: a worker signs in, answers two tasks (keyboard and phone-sized), the dashboard shows them."""
import pytest

from annotation.models import Answer
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def sign_in(page, base, username):
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def test_worker_answers_two_tasks_and_researcher_sees_them(live_server, page, make_study, make_worker, researcher):
    study = make_study(images=["astronaut", "chelsea"], workers_per_task=1)
    worker = make_worker("trinity")
    base = live_server.url

    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    sign_in(page, base, "trinity")
    page.click("#next-task")
    page.wait_for_selector("#answer-form img")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # Keyboard only: "1" picks the first option, Tab reaches the reason box, the confidence radios, submit.
    page.keyboard.press("1")
    assert page.is_checked("input[name=choice][value=person]")
    page.fill("textarea[name=reason]", "a person in a suit")
    page.check("input[name=confidence][value='4']")
    page.focus("#submit-answer")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Answer saved")

    # Second task: leave out the confidence first, read the error, then fix it.
    page.click("#next-task")
    page.wait_for_selector("#answer-form img")
    page.keyboard.press("2")
    page.click("#submit-answer")
    page.wait_for_selector("text=Please fix")
    assert "confidence" in page.inner_text("[role=alert]")
    page.check("input[name=confidence][value='5']")
    page.click("#submit-answer")
    page.wait_for_selector("text=Answer saved")
    assert page.inner_text("#done-count") == "2"
    assert Answer.objects.filter(worker=worker).count() == 2

    page.context.clear_cookies()
    page.set_viewport_size({"width": 1200, "height": 900})
    sign_in(page, base, researcher.username)
    page.goto(f"{base}/studies/{study.pk}/")
    assert page.inner_text("#answers-received") == "2"
    table = page.inner_text("#answers-table")
    assert "a person in a suit" in table and "trinity" in table
