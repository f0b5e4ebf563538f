"""Quality control in the claim/submit path: gold mix-in and exclusion, caps, time filters, block lists."""
from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation import selectors, services
from annotation.models import GOLD_SLOTS, Answer, Assignment, BlockedWorker, Task
from annotation.tokens import assignment_token

IMAGES = ["astronaut", "chelsea", "coffee", "rocket", "brick", "grass", "camera", "horse"]


def submit(worker, assignment, choice=None):
    choice = choice or (assignment.task.truth or {}).get("choice") or "person"
    return services.assignment_submit(assignment_id=assignment.pk, worker=worker,
                                      payload={"choice": choice, "confidence": 3}, token=assignment_token(assignment))


@pytest.fixture
def gold_study(make_study, researcher):
    """Six normal tasks and two gold ones (marked by the researcher before launch), gold rate 1/3."""
    study = make_study(images=IMAGES, workers_per_task=2, live=False, gold_rate=1 / 3, gold_min_accuracy=0.6,
                       gold_min_answers=2)
    for task in study.tasks.order_by("id")[:2]:
        services.task_set_gold(researcher=researcher, task=task, truth_label=task.truth["choice"])
    services.study_launch(study=study)
    return study


def test_researcher_marks_gold_before_launch_only(make_study, researcher):
    study = make_study(live=False)
    task = study.tasks.first()
    client = Client()
    client.force_login(researcher)
    assert client.post(reverse("task_gold", args=[task.pk]), {"label": "nonsense"}).status_code == 400
    assert client.post(reverse("task_gold", args=[task.pk]), {"label": "animal"}).status_code == 302
    task.refresh_from_db()
    assert task.is_gold and task.truth["choice"] == "animal" and task.wanted == GOLD_SLOTS
    services.study_launch(study=study)
    assert client.post(reverse("task_gold", args=[task.pk]), {"label": ""}).status_code == 409
    assert Task.objects.get(pk=task.pk).is_gold


def test_gold_is_mixed_in_at_the_study_rate(gold_study, make_worker):
    worker = make_worker()
    kinds = []
    while (a := services.assignment_claim_next(worker=worker)) is not None:
        kinds.append(a.task.is_gold)
        submit(worker, a)
    # rate 1/3: gold first, then two normal tasks, gold, ... until the two gold tasks are used up.
    assert kinds == [True, False, False, True, False, False, False, False]
    progress = selectors.study_progress(study=gold_study)
    assert progress["wanted"] == 12  # gold tasks are not part of the study's wanted answers


def test_a_worker_failing_gold_is_excluded_answers_kept_but_flagged(gold_study, make_worker, researcher):
    cheat, honest = make_worker("cheat"), make_worker("honest")
    first = services.assignment_claim_next(worker=cheat)
    assert first.task.is_gold
    submit(cheat, first, choice="animal" if first.task.truth["choice"] != "animal" else "person")  # wrong
    normal = []
    for _ in range(2):
        a = services.assignment_claim_next(worker=cheat)
        assert not a.task.is_gold
        submit(cheat, a)
        normal.append(a)
    second_gold = services.assignment_claim_next(worker=cheat)
    assert second_gold.task.is_gold
    submit(cheat, second_gold, choice="animal" if second_gold.task.truth["choice"] != "animal" else "person")
    # 0 of 2 gold right < 0.6: excluded from the study, no more tasks, answers kept but flagged and not counted.
    assert gold_study.excluded_workers.filter(pk=cheat.pk).exists()
    assert services.assignment_claim_next(worker=cheat) is None
    flagged = Answer.objects.filter(worker=cheat, flag="gold_failed")
    assert sorted(flagged.values_list("assignment_id", flat=True)) == sorted(a.pk for a in normal)
    assert set(Assignment.objects.filter(pk__in=[a.pk for a in normal]).values_list("state", flat=True)) == {"rejected"}
    for a in normal:
        assert Task.objects.get(pk=a.task_id).filled == 0  # slot back for another worker
    assert Answer.objects.filter(worker=cheat).count() == 4
    # The honest worker passes the gold and keeps going.
    while (a := services.assignment_claim_next(worker=honest)) is not None:
        submit(honest, a)
    assert not gold_study.excluded_workers.filter(pk=honest.pk).exists()
    client = Client()
    client.force_login(researcher)
    body = client.get(reverse("study_detail", args=[gold_study.pk])).content.decode()
    assert "gold_failed: 2" in body and 'id="excluded">cheat' in body


def test_per_worker_cap(make_study, make_worker):
    make_study(images=IMAGES[:4], workers_per_task=2, max_tasks_per_worker=2)
    worker = make_worker()
    for _ in range(2):
        submit(worker, services.assignment_claim_next(worker=worker))
    assert services.assignment_claim_next(worker=worker) is None
    assert services.assignment_claim_next(worker=make_worker()) is not None


def test_too_fast_and_too_slow_answers_are_flagged_and_not_counted(make_study, make_worker):
    study = make_study(images=["astronaut"], workers_per_task=2, min_answer_seconds=5, max_answer_seconds=600)
    fast, slow, fine = make_worker(), make_worker(), make_worker()
    a = services.assignment_claim_next(worker=fast)
    services.assignment_mark_shown(assignment=a)
    submit(fast, a)
    assert Answer.objects.get(worker=fast).flag == "too_fast"
    assert Assignment.objects.get(pk=a.pk).state == "rejected"
    b = services.assignment_claim_next(worker=slow)
    Assignment.objects.filter(pk=b.pk).update(shown_at=timezone.now() - dt.timedelta(minutes=11))
    b.refresh_from_db()
    submit(slow, b)
    assert Answer.objects.get(worker=slow).flag == "too_slow"
    c = services.assignment_claim_next(worker=fine)
    Assignment.objects.filter(pk=c.pk).update(shown_at=timezone.now() - dt.timedelta(seconds=30))
    c.refresh_from_db()
    submit(fine, c)
    assert Answer.objects.get(worker=fine).flag == ""
    task = study.tasks.get()
    assert (task.filled, task.approved) == (1, 1)  # only the valid answer holds a slot
    labels = selectors.study_label_answers(study=study, label_field="choice")
    assert list(labels["worker"]) == [fine.pk]


def test_block_list_keeps_workers_out_of_the_researchers_studies_only(make_study, make_worker, researcher,
                                                                      other_researcher):
    mine = make_study(images=["astronaut"], workers_per_task=3)
    spammer = make_worker("spammer")
    submit(spammer, services.assignment_claim_next(worker=spammer))
    make_study(name="mine too", images=["chelsea"])
    client = Client()
    client.force_login(researcher)
    assert client.post(reverse("worker_block", args=[spammer.pk]), {"reason": "spam"}).status_code == 302
    assert BlockedWorker.objects.get().reason == "spam"
    assert services.assignment_claim_next(worker=spammer) is None
    theirs = make_study(name="theirs", images=["coffee"], owner=other_researcher)
    assert services.assignment_claim_next(worker=spammer).task.study_id == theirs.pk
    # Only workers seen in one's own studies can be blocked from the study page.
    other = Client()
    other.force_login(other_researcher)
    stranger = make_worker("stranger")
    assert other.post(reverse("worker_block", args=[stranger.pk])).status_code == 404
    # A list of external ids blocks them before they ever arrive.
    reply = client.post(reverse("block_list"), {"backend": "prolific", "ids": "AAA111\nBBB222", "reason": "known"},
                        HTTP_ACCEPT="application/json")
    assert reply.status_code == 200 and reply.json()["blocked"] == ["AAA111", "BBB222"]
    assert client.post(reverse("block_list"), {"backend": "internal", "ids": "nobody"}).status_code == 404
    prolific = make_study(name="on prolific", images=["rocket"], backend="prolific",
                          recruitment={"prolific_study_id": "x"})
    url = reverse("prolific_entry", args=[prolific.pk]) + "?PROLIFIC_PID=AAA111&STUDY_ID=x&SESSION_ID=s"
    assert Client().get(url).status_code == 403
    assert not Assignment.objects.filter(task__study__in=[mine, prolific], worker__external_id="AAA111").exists()
