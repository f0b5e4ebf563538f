"""The study dashboard at scale: paginated, filtered and sorted tables, bulk decisions, gold on any task, and a
page and progress poll whose query counts do not grow with the number of tasks (20,000 here)."""
from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import Answer, Assignment, Study, Task
from tests.study_helpers import crowd_answers

MANY = 20_000


def add_tasks(study, n: int) -> None:
    Task.objects.bulk_create([Task(study=study, key=f"t{i:05d}", payload={}, wanted=3) for i in range(n)],
                             batch_size=5000)


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        reply = client.get(url)
    assert reply.status_code == 200, reply.content[:500]
    return len(captured)


@pytest.fixture
def answered(make_study, make_worker):
    study = make_study()
    Study.objects.filter(pk=study.pk).update(auto_approve=False)
    crowd_answers(study, make_worker, n=3)
    return study


@pytest.mark.slow
def test_page_and_poll_queries_do_not_grow_with_tasks(answered, researcher_client):
    page = reverse("study_detail", args=[answered.pk])
    ids = ",".join(str(t) for t in answered.tasks.values_list("pk", flat=True))
    poll = reverse("study_progress", args=[answered.pk]) + f"?tasks={ids}"
    small = queries(researcher_client, page), queries(researcher_client, poll)
    add_tasks(answered, MANY)
    large = queries(researcher_client, page), queries(researcher_client, poll)
    assert large == small, (small, large)
    body = researcher_client.get(page).content.decode()
    assert body.count("<tr data-task=") == 50 and f"{MANY + 3} tasks · page 1 of {(MANY + 3 + 49) // 50}" in body
    progress = researcher_client.get(poll).json()
    assert progress["tasks"] == MANY + 3 and progress["wanted"] == 3 * (MANY + 3) and len(progress["task_rows"]) == 3


def test_answers_newest_first_filtered_and_paginated(answered, researcher_client):
    url = reverse("study_detail", args=[answered.pk])
    newest = Answer.objects.filter(task__study=answered).order_by("-submitted_at", "-id").first()
    body = researcher_client.get(url).content.decode()
    first_row = body.split('id="answers-table"')[1].split("<tbody>")[1].split("</tr>")[0]
    assert f"<td>{newest.task.key}</td><td>{newest.worker}</td>" in first_row
    body = researcher_client.get(url, {"worker": str(newest.worker)}).content.decode()
    assert "3 answers · page 1 of 1" in body
    body = researcher_client.get(url, {"task": newest.task.key, "order": "oldest"}).content.decode()
    assert "3 answers · page 1 of 1" in body
    label = newest.payload["choice"]
    expected = Answer.objects.filter(task__study=answered, payload__choice=label).count()
    assert f"{expected} answers · page" in researcher_client.get(url, {"label": label}).content.decode()
    bad = researcher_client.get(url, {"state": "happy"}, HTTP_ACCEPT="application/json")
    assert bad.status_code == 400 and bad.json()["field"] == "status"


def test_bulk_decisions_apply_to_the_filtered_set(answered, researcher_client):
    worker = Answer.objects.filter(task__study=answered).first().worker
    decide = reverse("answers_decide", args=[answered.pk])
    reply = researcher_client.post(decide, {"decision": "reject", "worker": str(worker)},
                                   HTTP_ACCEPT="application/json")
    assert reply.json() == {"decision": "reject", "assignments": 3}
    states = dict(Assignment.objects.filter(task__study=answered).values_list("worker_id", "state").distinct())
    assert states[worker.pk] == "rejected"
    assert Assignment.objects.filter(task__study=answered, state="submitted").count() == 6
    reply = researcher_client.post(decide, {"decision": "approve", "state": "submitted"})
    assert reply.status_code == 302
    assert Assignment.objects.filter(task__study=answered, state="approved").count() == 6
    assert Assignment.objects.filter(task__study=answered, state="rejected").count() == 3
    other = researcher_client.post(decide, {"decision": "shrug"}, HTTP_ACCEPT="application/json")
    assert other.status_code == 400


def test_any_task_can_be_marked_gold(make_study, researcher_client):
    study = make_study(live=False)
    add_tasks(study, 400)
    url = reverse("study_detail", args=[study.pk])
    body = researcher_client.get(url, {"tkey": "t00399"}).content.decode()
    assert 'aria-label="gold answer of t00399"' in body
    last = Task.objects.get(study=study, key="t00399")
    researcher_client.post(reverse("task_gold", args=[last.pk]), {"label": "animal"})
    last.refresh_from_db()
    assert last.is_gold and last.truth == {"choice": "animal"}
    body = researcher_client.get(url, {"tgold": "yes"}).content.decode()
    assert re.search(r"<td>t00399 <a class=\"preview-link\"[^>]*>preview</a></td>.*gold: <b>animal</b>", body,
                     re.S) and "1 tasks · page 1 of 1" in body
