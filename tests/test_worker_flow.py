"""The internal crowd pool through the views: claim, answer, refuse bad or foreign submissions."""
import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.models import Answer, Assignment, Task, Worker
from tests.conftest import PASSWORD, worker_client

GOOD = {"choice": "person", "reason": "a face", "confidence": "4"}


def claim(client) -> int:
    reply = client.post(reverse("next_task"), HTTP_ACCEPT="application/json")
    assert reply.status_code == 200
    return reply.json()["assignment"]


def page_token(client, assignment_id) -> str:
    reply = client.get(reverse("assignment_page", args=[assignment_id]))
    assert reply.status_code == 200
    return re.search(r'name="token" value="([^"]+)"', reply.content.decode()).group(1)


def submit(client, assignment_id, token, data=GOOD, **extra):
    return client.post(reverse("assignment_page", args=[assignment_id]), {"token": token, **data}, **extra)


def test_signup_then_next_task_then_answer(db, make_study):
    study = make_study()
    client = Client()
    reply = client.post(reverse("worker_signup"), {"username": "neo", "password": PASSWORD})
    assert reply.status_code == 302
    assert Worker.objects.filter(user__username="neo").exists()
    reply = client.post(reverse("next_task"))
    assert reply.status_code == 302
    assignment_id = int(reply["Location"].rstrip("/").split("/")[-1])
    token = page_token(client, assignment_id)
    reply = submit(client, assignment_id, token)
    assert reply.status_code == 302
    answer = Answer.objects.get()
    assert answer.payload == {"choice": "person", "reason": "a face", "confidence": 4}
    assert answer.shown_at <= answer.submitted_at
    assert Assignment.objects.get(pk=assignment_id).state == "approved"
    task = Task.objects.get(pk=answer.task_id)
    assert (task.filled, task.approved) == (1, 1)
    assert task.study_id == study.pk


def test_signup_errors_name_the_field(db):
    reply = Client().post(reverse("worker_signup"), {"username": "x", "password": "short"})
    assert reply.status_code == 400
    body = reply.content.decode()
    assert "Ensure this value has at least 8 characters" in body or "at least 8" in body
    assert not Worker.objects.exists()


def test_malformed_answer_is_400_naming_the_field_and_stores_nothing(make_study, make_worker):
    make_study()
    client = worker_client(Client, make_worker())
    a = claim(client)
    token = page_token(client, a)
    reply = submit(client, a, token, {"choice": "person", "confidence": "11"}, HTTP_ACCEPT="application/json")
    assert reply.status_code == 400
    assert "confidence" in reply.json()["errors"]
    reply = submit(client, a, token, {"reason": "no choice"})
    assert reply.status_code == 400
    assert "choice" in reply.content.decode() and "this field is required" in reply.content.decode()
    reply = client.post(reverse("assignment_page", args=[a]), data="[1, 2]", content_type="application/json")
    assert reply.status_code == 400
    assert Answer.objects.count() == 0
    assert Assignment.objects.get(pk=a).state == "assigned"


def test_someone_elses_assignment_is_404_and_changes_nothing(make_study, make_worker):
    make_study()
    alice, bob = worker_client(Client, make_worker()), worker_client(Client, make_worker())
    a = claim(alice)
    token = page_token(alice, a)
    assert bob.get(reverse("assignment_page", args=[a])).status_code == 404
    assert submit(bob, a, token).status_code == 404
    assert bob.post(reverse("assignment_return", args=[a]), {"token": token}).status_code == 404
    assert Answer.objects.count() == 0
    assert Assignment.objects.get(pk=a).state == "assigned"


def test_tampered_token_is_403(make_study, make_worker):
    make_study()
    alice, bob = make_worker(), make_worker()
    alice_client, bob_client = worker_client(Client, alice), worker_client(Client, bob)
    a = claim(alice_client)
    b = claim(bob_client)
    bob_token = page_token(bob_client, b)
    # Alice submits her own assignment with Bob's token, then with a forged one.
    assert submit(alice_client, a, bob_token).status_code == 403
    assert submit(alice_client, a, bob_token[:-2] + "xx").status_code == 403
    assert submit(alice_client, a, "").status_code == 403
    assert Answer.objects.count() == 0


def test_replayed_submission_is_409_and_counted_once(make_study, make_worker):
    make_study()
    client = worker_client(Client, make_worker())
    a = claim(client)
    token = page_token(client, a)
    assert submit(client, a, token).status_code == 302
    assert submit(client, a, token).status_code == 409
    assert Answer.objects.count() == 1
    assert Task.objects.get(assignments__pk=a).approved == 1


def test_csrf_is_enforced(make_study, make_worker):
    make_study()
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_worker().user)
    assert client.post(reverse("next_task")).status_code == 403
    assert not Assignment.objects.exists()


def test_worker_never_gets_same_task_twice_and_runs_out(make_study, make_worker):
    study = make_study(images=["astronaut", "chelsea"], workers_per_task=2)
    client = worker_client(Client, make_worker())
    seen = []
    while (a := claim(client)) is not None:
        seen.append(Assignment.objects.get(pk=a).task_id)
        submit(client, a, page_token(client, a))
    assert sorted(seen) == sorted(study.tasks.values_list("pk", flat=True))


def test_open_assignment_is_offered_again_not_a_second_one(make_study, make_worker):
    make_study()
    client = worker_client(Client, make_worker())
    assert claim(client) == claim(client)
    assert Assignment.objects.count() == 1


def test_expired_assignment_is_reoffered_to_others_and_late_submit_refused(make_study, make_worker):
    make_study(images=["astronaut"], workers_per_task=1)
    alice, bob = worker_client(Client, make_worker()), worker_client(Client, make_worker())
    a = claim(alice)
    token = page_token(alice, a)
    assert claim(bob) is None  # the only slot is taken
    Assignment.objects.filter(pk=a).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert submit(alice, a, token).status_code == 409
    b = claim(bob)
    assert b is not None and b != a
    assert Assignment.objects.get(pk=a).state == "expired"
    assert Task.objects.get().filled == 1


def test_returned_assignment_frees_the_slot(make_study, make_worker):
    make_study(images=["astronaut"], workers_per_task=1)
    alice, bob = worker_client(Client, make_worker()), worker_client(Client, make_worker())
    a = claim(alice)
    reply = alice.post(reverse("assignment_return", args=[a]), {"token": page_token(alice, a)})
    assert reply.status_code == 302
    assert Assignment.objects.get(pk=a).state == "returned"
    assert claim(bob) is not None
    assert claim(alice) is None  # a worker never gets the same task twice


def test_excluded_and_blocked_workers_get_no_task(make_study, make_worker):
    study = make_study()
    excluded, blocked = make_worker(), make_worker()
    study.excluded_workers.add(excluded)
    Worker.objects.filter(pk=blocked.pk).update(blocked=True)
    assert claim(worker_client(Client, excluded)) is None
    assert claim(worker_client(Client, blocked)) is None


def test_closed_study_refuses_open_submissions(make_study, make_worker):
    from annotation.services import study_close

    study = make_study()
    client = worker_client(Client, make_worker())
    a = claim(client)
    token = page_token(client, a)
    study_close(study=study)
    assert submit(client, a, token).status_code == 409
    assert Answer.objects.count() == 0


def test_researcher_pages_are_not_for_workers(make_study, make_worker):
    study = make_study()
    client = worker_client(Client, make_worker())
    assert client.get(reverse("study_detail", args=[study.pk])).status_code == 403
    assert client.post(reverse("study_action", args=[study.pk, "close"])).status_code == 403


@pytest.mark.parametrize("anonymous_url", ["worker_home", "study_list"])
def test_anonymous_users_are_sent_to_sign_in(db, anonymous_url):
    reply = Client().get(reverse(anonymous_url))
    assert reply.status_code == 302 and "/accounts/login/" in reply["Location"]


def test_invitation_link_is_used_once(researcher, settings):
    settings.SALIENT_WORKER_SIGNUP_OPEN = False
    client = Client()
    client.force_login(researcher)
    url = client.post(reverse("invitation_create"), {"note": "lab member"},
                      HTTP_ACCEPT="application/json").json()["url"]
    path = url.split("testserver", 1)[1]
    assert Client().post(reverse("worker_signup"), {"username": "nobody", "password": PASSWORD}).status_code == 403
    reply = Client().post(path, {"username": "invited", "password": PASSWORD})
    assert reply.status_code == 302
    assert Client().post(path, {"username": "second", "password": PASSWORD}).status_code == 404
    assert list(Worker.objects.values_list("user__username", flat=True)) == ["invited"]


def test_periodic_expiry_task_frees_overdue_slots(make_study, make_worker):
    from workers.tasks import expire_assignments

    make_study(images=["astronaut"], workers_per_task=1)
    a = claim(worker_client(Client, make_worker()))
    assert expire_assignments.delay().get() == 0
    Assignment.objects.filter(pk=a).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert expire_assignments.delay().get() == 1
    assert Task.objects.get().filled == 0
    assert expire_assignments.delay().get() == 0
