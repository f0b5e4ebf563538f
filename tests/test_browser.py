"""A real browser: a worker signs in, answers two tasks (keyboard and phone-sized), the dashboard shows them."""
import pytest

from annotation.models import Answer
from annotation.reports.archive_job import study_run_export
from tests.study_helpers import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]




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

    # The second task opens directly. Leave out the confidence first, read the error, then fix it.
    page.wait_for_selector("#answer-form img")
    page.keyboard.press("2")
    page.click("#submit-answer")
    page.wait_for_selector("text=Please fix")
    assert "Confidence" in page.inner_text("[role=alert]")
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


def test_worker_answers_a_feature_panel(live_server, page, make_worker, researcher, django_capture_on_commit_callbacks):
    from annotation import services
    from tests.conftest import TINY_BENCHMARK, TINY_TRAINING

    study = services.study_create(owner=researcher, name="panel", kind="feature_panel", workers_per_task=1, settings={
        "benchmark": TINY_BENCHMARK, "training": TINY_TRAINING, "k_features": 1, "k_images": 3, "pool": 10,
        "attack_steps": 2, "classes": [1]})
    with django_capture_on_commit_callbacks(execute=True):
        services.study_start_computing(study=study)
    study.refresh_from_db()
    services.study_launch(study=study)
    make_worker("oracle")
    sign_in(page, live_server.url, "oracle")
    page.click("#next-task")
    page.wait_for_selector("text=How to read the panel")
    rows = page.locator(".panel-row:has(.panel-label)")  # the panel itself, not the solved examples
    assert rows.count() == 3
    for i in range(3):  # images, highlighted, amplified: every picture loads
        assert rows.nth(i).locator("img").count() == 3
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    assert page.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)")
    page.keyboard.press("3")  # background
    page.fill("textarea[name=reason]", "ok")  # too short
    page.check("input[name=confidence][value='2']")
    page.click("#submit-answer")
    page.wait_for_selector("text=Please fix")
    assert "reason" in page.inner_text("[role=alert]").lower()
    assert page.is_checked("input[name=main][value=background]")  # the choice survives the error
    page.fill("textarea[name=reason]", "the whole sky behind the coat lights up")
    page.check("input[name=confidence][value='2']")
    page.click("#submit-answer")
    page.wait_for_selector("text=Answer saved")
    answer = Answer.objects.get(task__study=study)
    assert answer.payload == {"main": "background", "reason": "the whole sky behind the coat lights up",
                              "confidence": 2}


def test_the_progress_bar_follows_a_job_and_offers_the_file_it_made(live_server, page, make_study, researcher):
    """The dashboard's 3-second poll moves the bar of a queued export job and shows its download link when done."""
    from django.urls import reverse

    from annotation.models import Job

    study = make_study(images=["astronaut"], workers_per_task=1)
    job = Job.objects.create(study=study, name="export", params={"file": "archive.zip"}, message="queued")
    sign_in(page, live_server.url, researcher.username)
    page.goto(f"{live_server.url}/studies/{study.pk}/")
    assert page.inner_text("#job-text").startswith("pending") and not page.is_visible("#job-file")
    study_run_export(job=Job.objects.select_related("study").get(pk=job.pk))  # the worker runs it
    page.wait_for_selector("#job-file a", state="visible", timeout=10_000)
    assert page.get_attribute("#job-bar", "aria-valuenow") == "100"
    assert page.get_attribute("#job-file a", "href") == reverse("study_job_file", args=[study.pk, job.pk])
    assert page.inner_text("#job-text").startswith("done")
