"""Task preview: the owner sees any task as a worker would, in any study state, and nothing is recorded."""
import pytest
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.models import Answer, Assignment
from tests.study_helpers import crowd_answers


def _counts():
    return Assignment.objects.count(), Answer.objects.count()


@pytest.mark.parametrize("state", ["ready", "live", "closed"])
def test_owner_previews_every_task_in_any_state_without_an_assignment(state, make_study, make_worker,
                                                                      researcher_client):
    study = make_study(images=["astronaut", "chelsea", "coffee"], workers_per_task=1, live=state != "ready")
    if state == "closed":
        crowd_answers(study, make_worker, n=1)
        services.study_close(study=study)
    study.refresh_from_db()
    assert study.state == state
    before = _counts()
    tasks = list(study.tasks.order_by("id"))
    for position, task in enumerate(tasks, start=1):
        reply = researcher_client.get(reverse("task_preview", args=[task.pk]))
        assert reply.status_code == 200
        page = reply.content.decode()
        assert task.payload["question"] in page and f"{position} of {len(tasks)}" in page
        assert page.count("<img") == len(task.payload["images"])
        assert 'name="choice"' in page  # the answer fields a worker fills in
        assert 'name="token"' not in page and "disabled" in page
        assert ('id="preview-next"' in page) == (position < len(tasks))
    assert _counts() == before
    dashboard = researcher_client.get(reverse("study_detail", args=[study.pk])).content.decode()
    for task in tasks:
        assert reverse("task_preview", args=[task.pk]) in dashboard


def test_preview_is_for_the_owner_only(make_study, other_researcher, make_worker, researcher_client):
    task = make_study(images=["astronaut"], workers_per_task=1).tasks.get()
    url = reverse("task_preview", args=[task.pk])
    mallory = Client()
    mallory.force_login(other_researcher)
    assert mallory.get(url).status_code == 404
    worker = Client()
    worker.force_login(make_worker("curious").user)
    assert worker.get(url).status_code in (302, 403)
    assert Client().get(url).status_code in (302, 403)
    assert researcher_client.post(url).status_code == 405
    assert researcher_client.get(reverse("task_preview", args=[task.pk + 10_000])).status_code == 404
    assert _counts() == (0, 0)
