"""Crowd-site abuse (issue 29, findings 5 and 6): a forged MTurk claim never blocks the real worker, the
per-worker cap holds on every backend, and Prolific entries cannot squat a study's slots."""
from __future__ import annotations

from django.test import Client
from django.urls import reverse

from annotation.models import Answer, Assignment, ExternalSession, Study
from tests.mturk_helpers import GOOD, claim_of, confirms, entry_url


def _enter(task, assignment_id, worker_id):
    return Client().get(entry_url(task, assignmentId=assignment_id, workerId=worker_id))


def _post(task, token):
    return Client().post(reverse("mturk_task", args=[task.pk]), {"token": token, **GOOD})


def _denied(mturk, assignment_id):
    mturk.add_client_error("get_assignment", service_error_code="RequestError", http_status_code=400,
                           service_message="Assignment does not exist.",
                           expected_params={"AssignmentId": assignment_id})


def test_a_forged_unconfirmed_claim_does_not_block_the_real_worker(mturk_study, mturk):
    task = mturk_study.tasks.order_by("id").first()
    # Mallory posts an answer for the victim's worker id under a made-up assignment id.
    forged = claim_of(_enter(task, "MADEUP", "VICTIM")["Location"])
    _denied(mturk, "MADEUP")
    assert _post(task, forged).status_code == 200
    assert Answer.objects.get(assignment__external_id="MADEUP").flag == "unconfirmed"
    # The victim arrives with the assignment MTurk really gave them: entry and answer both go through.
    entry = _enter(task, "REAL1", "VICTIM")
    assert entry.status_code == 302, entry.content[:300]
    confirms(mturk, "REAL1", "VICTIM", task.external_id)
    assert _post(task, claim_of(entry["Location"])).status_code == 200
    real = Assignment.objects.get(external_id="REAL1")
    assert real.state in ("submitted", "approved") and real.answer.flag == ""
    task.refresh_from_db()
    assert task.filled == 1
    assert not Assignment.objects.filter(external_id="MADEUP").exists()
    assert not ExternalSession.objects.filter(session_id="MADEUP").exists()


def test_an_unconfirmed_claim_still_blocks_another_unconfirmed_one(mturk_study, mturk):
    task = mturk_study.tasks.order_by("id").first()
    first = claim_of(_enter(task, "X1", "W9")["Location"])
    second = claim_of(_enter(task, "X2", "W9")["Location"])
    _denied(mturk, "X1")
    assert _post(task, first).status_code == 200
    _denied(mturk, "X2")
    assert _post(task, second).status_code == 409
    assert Assignment.objects.filter(worker__external_id="W9").count() == 1


def test_the_per_worker_cap_applies_to_mturk_workers(mturk_study, mturk):
    Study.objects.filter(pk=mturk_study.pk).update(max_tasks_per_worker=1)
    first, second = mturk_study.tasks.order_by("id")
    later = claim_of(_enter(second, "B2", "W1")["Location"])  # entered while still under the cap
    entry = _enter(first, "B1", "W1")
    confirms(mturk, "B1", "W1", first.external_id)
    assert _post(first, claim_of(entry["Location"])).status_code == 200
    refused = _enter(second, "B3", "W1")
    assert refused.status_code == 409 and "tasks a worker may do" in refused.content.decode()
    posted = _post(second, later)  # refused before MTurk is asked
    assert posted.status_code == 409 and "tasks a worker may do" in posted.content.decode()
    assert not Assignment.objects.filter(external_id="B2").exists()


def _prolific_entry(study, pid, session):
    from urllib.parse import urlencode

    query = urlencode({"PROLIFIC_PID": pid, "STUDY_ID": "P1", "SESSION_ID": session})
    return Client().get(reverse("prolific_entry", args=[study.pk]) + "?" + query)


def test_made_up_prolific_ids_cannot_squat_every_slot(make_study, settings):
    """Without an API token, at most SALIENT_UNVERIFIED_OPEN_MAX open entries per study within the window."""
    from annotation.models import Worker

    settings.SALIENT_UNVERIFIED_OPEN_MAX = 3
    study = make_study(images=["astronaut", "chelsea", "coffee"], workers_per_task=3, backend="prolific",
                       recruitment={"prolific_study_id": "P1"})
    for i in range(3):
        assert _prolific_entry(study, f"fake{i:020d}", f"S{i}").status_code == 302
    resumed = _prolific_entry(study, f"fake{0:020d}", "S0")  # the same unfinished session resumes
    assert resumed.status_code == 302
    reply = _prolific_entry(study, "fake99", "S99")
    assert reply.status_code == 429 and "try again" in reply.content.decode()
    assert not Worker.objects.filter(external_id="fake99").exists()
    assert Assignment.objects.filter(task__study=study, state="assigned").count() == 3


def test_a_refused_prolific_entry_stores_no_worker(make_study):
    from annotation.models import Worker

    study = make_study(backend="prolific", recruitment={"prolific_study_id": "P1"})
    assert _prolific_entry(study, "participant0001", "S1").status_code == 302
    assert _prolific_entry(study, "participant0001", "S2").status_code == 409  # started already
    Study.objects.filter(pk=study.pk).update(state="closed")
    assert _prolific_entry(study, "participant0002", "S3").status_code == 409
    assert list(Worker.objects.filter(backend="prolific").values_list("external_id", flat=True)) == ["participant0001"]


def test_the_study_page_says_prolific_entries_are_unverified_without_a_token(make_study, researcher_client, settings):
    study = make_study(backend="prolific", recruitment={"prolific_study_id": "P1"})
    page = researcher_client.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert "unverified" in page and "SALIENT_PROLIFIC_API_TOKEN" in page
    settings.SALIENT_PROLIFIC_API_TOKEN = "secret"
    page = researcher_client.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert "unverified" not in page
