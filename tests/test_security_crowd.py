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
                           service_message="Assignment does not exist.", expected_params={"AssignmentId": assignment_id})


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
