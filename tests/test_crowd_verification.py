"""Made-up crowd workers (issue 20): MTurk answers count only once MTurk confirms the pair; Prolific's STUDY_ID."""
from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from annotation import selectors, services
from annotation.errors import ApplicationError
from annotation.models import Answer, Assignment, ExternalSession, Task, Worker
from tests.mturk_helpers import GOOD, claim_of, confirms, entry_url

LISTED = {"MaxResults": 100, "AssignmentStatuses": ["Submitted", "Approved", "Rejected"]}


def answer_hit(task, assignment_id, worker_id):
    token = claim_of(Client().get(entry_url(task, assignmentId=assignment_id, workerId=worker_id))["Location"])
    return Client().post(reverse("mturk_task", args=[task.pk]), {"token": token, **GOOD})


def counted(study) -> list:
    return list(selectors.study_label_answers(study=study, label_field="choice")["worker"])


def assert_kept_not_counted(task, assignment_id):
    answer = Answer.objects.get(assignment__external_id=assignment_id)
    assert answer.flag == "unconfirmed" and answer.assignment.state == "rejected"
    task.refresh_from_db()
    assert (task.filled, task.approved) == (0, 0)
    assert answer.worker_id not in counted(task.study)


def test_fake_worker_ids_mturk_does_not_know_are_stored_but_not_counted(mturk_study, mturk):
    task = mturk_study.tasks.order_by("id").first()
    for i in range(3):  # one person, three made-up workers
        mturk.add_client_error("get_assignment", service_error_code="RequestError", http_status_code=400,
                               service_message="Assignment does not exist.", expected_params={"AssignmentId": f"F{i}"})
        assert answer_hit(task, f"F{i}", f"FAKE{i}").status_code == 200
        assert_kept_not_counted(task, f"F{i}")
    assert Answer.objects.count() == 3


def test_a_pair_mturk_gives_to_another_worker_or_hit_is_not_counted(mturk_study, mturk):
    task = mturk_study.tasks.order_by("id").first()
    confirms(mturk, "A1", "SOMEONE_ELSE", "H0")
    answer_hit(task, "A1", "W1")
    assert_kept_not_counted(task, "A1")
    confirms(mturk, "A2", "W2", "H1")  # the assignment of another HIT
    answer_hit(task, "A2", "W2")
    assert_kept_not_counted(task, "A2")


def test_unreachable_mturk_leaves_the_answer_unconfirmed_until_reconciliation(mturk_study, mturk):
    from workers.tasks import reconcile_crowd_backends

    task = mturk_study.tasks.order_by("id").first()
    answer_hit(task, "A1", "W1")  # nothing stubbed: the call fails, MTurk cannot be asked
    answer_hit(task, "A2", "W2")
    assert_kept_not_counted(task, "A1")
    mturk.add_response("list_assignments_for_hit", {"Assignments": [
        {"AssignmentId": "A1", "WorkerId": "W1", "HITId": "H0", "AssignmentStatus": "Submitted"},
        {"AssignmentId": "A2", "WorkerId": "W9", "HITId": "H0", "AssignmentStatus": "Submitted"},  # not W2's
    ], "NumResults": 2}, {"HITId": "H0", **LISTED})
    mturk.add_response("approve_assignment", {}, {"AssignmentId": "A1", "RequesterFeedback": "Thank you!"})
    mturk.add_response("list_assignments_for_hit", {"Assignments": [], "NumResults": 0}, {"HITId": "H1", **LISTED})
    assert reconcile_crowd_backends.delay().get() == 1
    confirmed = Answer.objects.get(assignment__external_id="A1")
    assert confirmed.flag == "" and confirmed.assignment.state == "approved"
    task.refresh_from_db()
    assert (task.filled, task.approved) == (1, 1)
    assert counted(mturk_study) == [confirmed.worker_id]
    assert Answer.objects.get(assignment__external_id="A2").flag == "unconfirmed"


def test_another_workers_id_with_a_new_assignment_id_is_refused_and_nothing_overwritten(mturk_study, mturk):
    task = mturk_study.tasks.order_by("id").first()
    confirms(mturk)
    assert answer_hit(task, "A1", "W1").status_code == 200
    before = list(Assignment.objects.values_list("pk", "external_id", "worker__external_id", "state"))
    reply = Client().get(entry_url(task, assignmentId="A9", workerId="W1"))
    assert reply.status_code == 409 and "another assignment id" in reply.content.decode()
    assert Client().get(entry_url(task, assignmentId="A1", workerId="W2")).status_code == 409
    assert list(Assignment.objects.values_list("pk", "external_id", "worker__external_id", "state")) == before
    assert list(ExternalSession.objects.values_list("session_id", flat=True)) == ["A1"]


def test_a_claim_made_before_another_pair_answered_is_refused_at_submit(mturk_study, mturk):
    task = mturk_study.tasks.order_by("id").first()
    early = claim_of(Client().get(entry_url(task, assignmentId="A9", workerId="W1"))["Location"])
    confirms(mturk)
    assert answer_hit(task, "A1", "W1").status_code == 200
    reply = Client().post(reverse("mturk_task", args=[task.pk]), {"token": early, **GOOD})
    assert reply.status_code == 409 and Answer.objects.count() == 1
    assert Assignment.objects.get().external_id == "A1"


def test_fake_entries_create_no_worker_rows(mturk_study):
    task = mturk_study.tasks.order_by("id").first()
    for i in range(10):
        assert Client().get(entry_url(task, assignmentId=f"X{i}", workerId=f"Y{i}")).status_code == 302
    assert Worker.objects.filter(backend="mturk").count() == 0 and Task.objects.get(pk=task.pk).filled == 0


# -- Prolific -----------------------------------------------------------------------------------

def prolific_entry(study, study_id):
    query = urlencode({"PROLIFIC_PID": "5f0c0ffee0ddba11c0ffee00", "STUDY_ID": study_id, "SESSION_ID": "S1"})
    return reverse("prolific_entry", args=[study.pk]) + "?" + query


def test_prolific_entry_with_a_wrong_study_id_is_refused(make_study):
    study = make_study(backend="prolific", recruitment={"prolific_study_id": "P1"})
    reply = Client().get(prolific_entry(study, "P2"))
    assert reply.status_code == 403 and "STUDY_ID" in reply.content.decode()
    assert not Worker.objects.filter(backend="prolific").exists() and not ExternalSession.objects.exists()
    assert Client().get(prolific_entry(study, "P1")).status_code == 302


def test_a_prolific_study_needs_its_prolific_id_to_launch(make_study):
    study = make_study(backend="prolific", live=False)
    with pytest.raises(ApplicationError, match="Prolific study id"):
        services.study_launch(study=study)
    study.refresh_from_db()
    assert study.state == "ready"


@pytest.fixture
def prolific_api(settings, monkeypatch):
    """Prolific's API as a table of submissions; the requests it gets are recorded."""
    import io
    import json
    import urllib.error

    settings.SALIENT_PROLIFIC_API_TOKEN = "secret-token"
    submissions = {"S1": {"id": "S1", "participant_id": "5f0c0ffee0ddba11c0ffee00", "study_id": "P1"},
                   "S2": {"id": "S2", "participant_id": "someone-else", "study_id": "P1"},
                   "S3": {"id": "S3", "participant_id": "5f0c0ffee0ddba11c0ffee00", "study_id": "OTHER"}}
    seen = []

    def urlopen(request, timeout):
        seen.append((request.full_url, request.get_header("Authorization")))
        key = request.full_url.rstrip("/").rsplit("/", 1)[1]
        if key == "DOWN":
            raise urllib.error.URLError("connection refused")
        if key not in submissions:
            raise urllib.error.HTTPError(request.full_url, 404, "Not Found", {}, None)
        return io.BytesIO(json.dumps(submissions[key]).encode())

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    return seen


def prolific_session_entry(study, session, pid="5f0c0ffee0ddba11c0ffee00"):
    query = urlencode({"PROLIFIC_PID": pid, "STUDY_ID": "P1", "SESSION_ID": session})
    return reverse("prolific_entry", args=[study.pk]) + "?" + query


@pytest.mark.parametrize("session", ["S2", "S3", "S404"], ids=["other-participant", "other-study", "unknown"])
def test_prolific_entry_prolific_denies_is_refused(make_study, prolific_api, session):
    study = make_study(backend="prolific", recruitment={"prolific_study_id": "P1"})
    reply = Client().get(prolific_session_entry(study, session))
    assert reply.status_code == 403 and "does not know this session" in reply.content.decode()
    assert not Worker.objects.filter(backend="prolific").exists() and not ExternalSession.objects.exists()
    assert prolific_api == [(f"https://api.prolific.com/api/v1/submissions/{session}/", "Token secret-token")]


def test_prolific_entry_prolific_confirms_goes_on_and_cannot_be_asked_fails_closed(make_study, prolific_api):
    study = make_study(backend="prolific", recruitment={"prolific_study_id": "P1"})
    assert Client().get(prolific_session_entry(study, "S1")).status_code == 302
    reply = Client().get(prolific_session_entry(study, "DOWN", pid="another0participant"))
    assert reply.status_code == 503 and "could not be asked" in reply.content.decode()  # a token set: fail closed
    assert ExternalSession.objects.count() == 1
    assert not Worker.objects.filter(external_id="another0participant").exists()
