"""MTurk recruiter: every API call's parameters through botocore's Stubber, the framed entry page, reconciliation."""
from __future__ import annotations

import re

import pytest
from botocore.stub import ANY
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.models import Answer, Assignment, ExternalSession, Task, Worker
from annotation.recruiters import by_name
from annotation.recruiters.mturk import MTurkRecruiter, unique_request_token
from annotation.recruiters.mturk_client import EXPIRE_NOW, SANDBOX_ENDPOINT
from tests.mturk_helpers import GOOD, SANDBOX_SUBMIT, claim_of, confirms, entry_url, expected_hit


def test_launch_creates_one_hit_per_task_with_the_spec_parameters(mturk_study):
    assert list(mturk_study.tasks.order_by("id").values_list("external_id", flat=True)) == ["H0", "H1"]
    job = mturk_study.jobs.get(name="recruit")
    assert job.state == "done" and job.message.startswith("2 opened")


def test_opening_again_creates_no_second_hit(mturk_study, mturk):
    by_name("mturk").open(mturk_study, 3)  # no stubbed response: any create_hit call would fail the test
    assert Task.objects.filter(study=mturk_study).exclude(external_id="").count() == 2


def test_retried_creation_reuses_the_token_and_finds_the_first_hit(make_study, mturk):
    study = make_study(images=["astronaut"], workers_per_task=3, reward_cents=12, backend="mturk")
    task = study.tasks.get()
    params = expected_hit(study, task)
    # The first try times out on Amazon's side after the HIT was made; the retry is refused as a duplicate.
    mturk.add_client_error("create_hit", service_error_code="ServiceFault", http_status_code=500,
                           expected_params=params)
    mturk.add_client_error("create_hit", service_error_code="RequestError", http_status_code=400,
                           service_message="The HIT with UniqueRequestToken already exists.", expected_params=params)
    mturk.add_response("list_hits", {"HITs": [
        {"HITId": "OTHER", "RequesterAnnotation": "salient study 999 task 1"},
        {"HITId": "FIRST", "RequesterAnnotation": params["RequesterAnnotation"]},
    ], "NumResults": 2}, {"MaxResults": 100})
    with pytest.raises(Exception, match="ServiceFault"):
        services.recruitment_open(study=study)
    assert Task.objects.get().external_id == ""
    services.recruitment_open(study=study)
    assert Task.objects.get().external_id == "FIRST"


def test_token_differs_between_tasks_and_studies(make_study):
    one = make_study(name="one", images=["astronaut", "chelsea"])
    two = make_study(name="two", images=["astronaut"])
    tokens = {unique_request_token(s, t) for s in (one, two) for t in s.tasks.all()}
    assert len(tokens) == 3 and all(len(t) <= 64 for t in tokens)


def test_preview_shows_the_task_without_a_form_and_creates_nothing(mturk_study):
    task = mturk_study.tasks.order_by("id").first()
    reply = Client().get(entry_url(task, assignmentId="ASSIGNMENT_ID_NOT_AVAILABLE"))
    assert reply.status_code == 200
    body = reply.content.decode()
    assert "Preview" in body and "<form" not in body and "What is the main subject" in body
    assert "X-Frame-Options" not in reply.headers
    assert "frame-ancestors 'self' https://www.mturk.com" in reply.headers["Content-Security-Policy"]
    assert not Worker.objects.filter(backend="mturk").exists() and not Assignment.objects.exists()


def test_worker_answers_in_the_frame_and_the_page_posts_to_turk_submit_to(mturk_study, mturk):
    task = mturk_study.tasks.order_by("id").first()
    client = Client(enforce_csrf_checks=True)  # no session, no CSRF cookie: the token carries the proof
    reply = client.get(entry_url(task))
    assert reply.status_code == 302
    assert not Worker.objects.filter(backend="mturk").exists() and not Assignment.objects.exists()
    page = client.get(reply["Location"])
    assert page.status_code == 200 and "X-Frame-Options" not in page.headers
    token = re.search(r'name="token" value="([^"]+)"', page.content.decode()).group(1)
    confirms(mturk)
    reply = client.post(reverse("mturk_task", args=[task.pk]), {"token": token, **GOOD})
    assert reply.status_code == 200
    body = reply.content.decode()
    assert f'action="{SANDBOX_SUBMIT}/mturk/externalSubmit"' in body
    assert 'name="assignmentId" value="A1"' in body
    assignment = Assignment.objects.get()
    assert (assignment.worker.backend, assignment.worker.external_id, assignment.external_id) == ("mturk", "W1", "A1")
    answer = Answer.objects.get()
    assert answer.payload["choice"] == "person" and answer.worker.external_id == "W1" and answer.flag == ""
    assert Assignment.objects.get().state == "approved"
    # A replay is refused and counted once (MTurk is not asked again).
    assert client.post(reverse("mturk_task", args=[task.pk]), {"token": token, **GOOD}).status_code == 409
    assert Answer.objects.count() == 1 and Task.objects.get(pk=task.pk).approved == 1


def test_entering_stores_nothing_and_holds_no_slot(mturk_study):
    task = mturk_study.tasks.order_by("id").first()
    for i in range(5):
        assert Client().get(entry_url(task, assignmentId=f"A{i}", workerId=f"W{i}")).status_code == 302
    assert not Worker.objects.filter(backend="mturk").exists() and not Assignment.objects.exists()
    assert Task.objects.get(pk=task.pk).filled == 0


@pytest.mark.parametrize("change, status", [
    ({"hitId": "H9"}, 404),                                 # another HIT than the task's
    ({"turkSubmitTo": "https://evil.example.com"}, 403),   # posting the assignment elsewhere
    ({"workerId": "W1<script>"}, 400),                      # malformed id
    ({"assignmentId": ""}, 400),
])
def test_tampered_entry_parameters_are_refused_and_change_nothing(mturk_study, change, status):
    task = mturk_study.tasks.order_by("id").first()
    assert Client().get(entry_url(task, **change)).status_code == status
    assert not Assignment.objects.exists() and not Worker.objects.filter(backend="mturk").exists()


def test_tampered_token_or_id_on_the_task_page_is_refused(mturk_study, mturk):
    one, two = mturk_study.tasks.order_by("id")
    a_token = claim_of(Client().get(entry_url(one))["Location"])
    b_token = claim_of(Client().get(entry_url(two, assignmentId="A2", workerId="W2"))["Location"])
    client = Client()
    assert client.get(reverse("mturk_task", args=[one.pk]) + "?t=" + b_token).status_code == 403
    assert client.post(reverse("mturk_task", args=[one.pk]), {"token": b_token, **GOOD}).status_code == 403
    assert client.post(reverse("mturk_task", args=[one.pk]), {"token": a_token[:-3] + "abc", **GOOD}).status_code == 403
    assert client.post(reverse("mturk_task", args=[9999]), {"token": a_token, **GOOD}).status_code == 404
    assert Answer.objects.count() == 0 and not Worker.objects.filter(backend="mturk").exists()
    confirms(mturk, "A2", "W2", "H1")
    assert client.post(reverse("mturk_task", args=[two.pk]), {"token": b_token, **GOOD}).status_code == 200
    # Someone else's assignment id with another worker id on the same HIT.
    assert Client().get(entry_url(two, assignmentId="A2", workerId="W3")).status_code == 409


def test_only_worker_task_pages_may_be_framed(mturk_study, researcher):
    client = Client()
    client.force_login(researcher)
    for url in [reverse("study_detail", args=[mturk_study.pk]), reverse("login"), reverse("worker_signup")]:
        reply = client.get(url)
        assert reply.headers["X-Frame-Options"] == "DENY", url
        assert "Content-Security-Policy" not in reply.headers


def test_researcher_pages_keep_csrf(mturk_study, researcher):
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    assert client.post(reverse("study_action", args=[mturk_study.pk, "close"])).status_code == 403


def _answer(study, key_index, assignment_id, worker_id, stubber=None, **submit):
    """Enter and answer a HIT; with ``stubber``, MTurk confirms the pair at submit."""
    task = study.tasks.order_by("id")[key_index]
    token = claim_of(Client().get(entry_url(task, assignmentId=assignment_id, workerId=worker_id))["Location"])
    if stubber is not None:
        confirms(stubber, assignment_id, worker_id, task.external_id)
    assert Client().post(reverse("mturk_task", args=[task.pk]), {"token": token, **GOOD, **submit}).status_code == 200
    return Assignment.objects.get(task=task, external_id=assignment_id)


def test_periodic_reconcile_approves_stored_answers_and_records_what_mturk_says(mturk_study, mturk):
    from workers.tasks import reconcile_crowd_backends

    good = _answer(mturk_study, 0, "A1", "W1", mturk)
    rejected = _answer(mturk_study, 0, "A2", "W2", mturk)
    services.assignment_reject(assignment=rejected)
    already = _answer(mturk_study, 1, "A3", "W1", mturk)
    mturk.add_response("list_assignments_for_hit", {"Assignments": [
        {"AssignmentId": "A1", "WorkerId": "W1", "HITId": "H0", "AssignmentStatus": "Submitted"},
        {"AssignmentId": "A2", "WorkerId": "W2", "HITId": "H0", "AssignmentStatus": "Submitted"},
        {"AssignmentId": "A7", "WorkerId": "W7", "HITId": "H0", "AssignmentStatus": "Submitted"},  # never stored here
    ], "NumResults": 3}, {"HITId": "H0", "MaxResults": 100, "AssignmentStatuses": ["Submitted", "Approved",
                                                                                   "Rejected"]})
    mturk.add_response("approve_assignment", {}, {"AssignmentId": "A1", "RequesterFeedback": "Thank you!"})
    mturk.add_response("reject_assignment", {}, {"AssignmentId": "A2",
                                                 "RequesterFeedback": "Your answer was not accepted: "
                                                                      "rejected by the researcher."})
    mturk.add_response("list_assignments_for_hit", {"Assignments": [
        {"AssignmentId": "A3", "WorkerId": "W1", "HITId": "H1", "AssignmentStatus": "Approved"},
    ], "NumResults": 1}, {"HITId": "H1", "MaxResults": 100, "AssignmentStatuses": ["Submitted", "Approved",
                                                                                   "Rejected"]})
    assert reconcile_crowd_backends.delay().get() == 2
    statuses = dict(Assignment.objects.values_list("external_id", "platform_status"))
    assert statuses == {"A1": "Approved", "A2": "Rejected", "A3": "Approved"}
    assert Assignment.objects.get(pk=good.pk).platform_checked_at is not None
    assert Assignment.objects.get(pk=already.pk).state == "approved"


def test_reconcile_is_in_the_beat_schedule(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "workers.tasks.reconcile_crowd_backends" in tasks


LISTED = {"MaxResults": 100, "AssignmentStatuses": ["Submitted", "Approved", "Rejected"]}


def test_close_expires_every_hit_and_reconciles_a_last_time(mturk_study, mturk, django_capture_on_commit_callbacks):
    """The periodic reconciliation covers live studies only: closing approves what was submitted before."""
    _answer(mturk_study, 0, "A1", "W1", mturk)
    for hit in ["H0", "H1"]:
        mturk.add_response("update_expiration_for_hit", {}, {"HITId": hit, "ExpireAt": EXPIRE_NOW})
    mturk.add_response("list_assignments_for_hit", {"Assignments": [
        {"AssignmentId": "A1", "WorkerId": "W1", "HITId": "H0", "AssignmentStatus": "Submitted"}], "NumResults": 1},
        {"HITId": "H0", **LISTED})
    mturk.add_response("approve_assignment", {}, {"AssignmentId": "A1", "RequesterFeedback": "Thank you!"})
    mturk.add_response("list_assignments_for_hit", {"Assignments": [], "NumResults": 0}, {"HITId": "H1", **LISTED})
    with django_capture_on_commit_callbacks(execute=True):
        services.study_close(study=mturk_study)
    assert Assignment.objects.get(external_id="A1").platform_status == "Approved"


def test_bonus_block_and_more_assignments(mturk_study, mturk, researcher):
    assignment = _answer(mturk_study, 0, "A1", "W1", mturk)
    mturk.add_response("send_bonus", {}, {"WorkerId": "W1", "BonusAmount": "0.25", "AssignmentId": "A1",
                                          "Reason": "careful work", "UniqueRequestToken": ANY})
    services.assignment_pay_bonus(researcher=researcher, assignment=assignment, cents=25, reason="careful work")
    mturk.add_response("create_worker_block", {}, {"WorkerId": "W1", "Reason": "spam"})
    services.worker_block(researcher=researcher, worker=assignment.worker, reason="spam")
    assert Client().get(entry_url(mturk_study.tasks.order_by("id")[1], assignmentId="A5")).status_code == 403
    for hit in ["H0", "H1"]:
        mturk.add_response("create_additional_assignments_for_hit", {},
                           {"HITId": hit, "NumberOfAdditionalAssignments": 2, "UniqueRequestToken": ANY})
    assert len(by_name("mturk").recruit_more(mturk_study, 2).opened) == 2


def test_sandbox_setting_picks_the_endpoint(settings):
    settings.SALIENT_MTURK_SANDBOX = True
    assert MTurkRecruiter().service.endpoint == SANDBOX_ENDPOINT
    settings.SALIENT_MTURK_SANDBOX = False
    assert MTurkRecruiter().service.endpoint == "https://mturk-requester.us-east-1.amazonaws.com"


def test_mturk_needs_an_https_public_url(make_study, settings):
    settings.SALIENT_PUBLIC_URL = "http://localhost:8000"
    study = make_study(backend="mturk")
    with pytest.raises(Exception, match="SALIENT_PUBLIC_URL"):
        by_name("mturk").hit_params(study, study.tasks.first(), 3)


def test_cost_estimate_adds_the_platform_fee(make_study, researcher):
    study = make_study(images=["astronaut", "chelsea"], workers_per_task=3, reward_cents=10, backend="mturk",
                       live=False)
    client = Client()
    client.force_login(researcher)
    body = client.get(reverse("study_detail", args=[study.pk])).content.decode()
    # 2 tasks x 3 workers x (10 + 20 % fee) = 72 cents
    assert 'id="cost-total">72.00' in body
    big = by_name("mturk").cost_estimate(tasks=10, gold_tasks=0, workers_per_task=10, reward_cents=10, gold_rate=0)
    assert big["total_cents"] == 10 * 10 * 14  # 40 % fee from 10 assignments per HIT
    assert by_name("internal").cost_estimate(tasks=10, gold_tasks=0, workers_per_task=5, reward_cents=10,
                                             gold_rate=0)["fee_cents"] == 0
    assert by_name("prolific").cost_estimate(tasks=3, gold_tasks=0, workers_per_task=1, reward_cents=30,
                                             gold_rate=0)["total_cents"] == 120


def test_expired_hit_entry_after_close_is_refused(mturk_study, mturk, django_capture_on_commit_callbacks):
    for hit in ["H0", "H1"]:
        mturk.add_response("update_expiration_for_hit", {}, {"HITId": hit, "ExpireAt": EXPIRE_NOW})
    for hit in ["H0", "H1"]:
        mturk.add_response("list_assignments_for_hit", {"Assignments": [], "NumResults": 0}, {"HITId": hit, **LISTED})
    with django_capture_on_commit_callbacks(execute=True):
        services.study_close(study=mturk_study)
    assert Client().get(entry_url(mturk_study.tasks.order_by("id").first())).status_code == 409
    assert not ExternalSession.objects.exists()
