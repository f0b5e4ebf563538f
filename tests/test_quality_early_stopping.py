"""Adaptive early stopping: a task stops once its remaining answers cannot change its label."""
from __future__ import annotations

import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse

from analysis.aggregation import MajorityVote, ThresholdVote
from analysis.aggregation.early_stopping import label_settled, majority_settled, majority_settled_counts
from annotation import services
from annotation.models import Task
from annotation.tokens import assignment_token

VALUES = ["a", "b", "c"]


def majority(table):
    return MajorityVote(labels=VALUES).fit(table).table_


@pytest.mark.parametrize("labels, remaining, settled", [
    (["a", "a", "a"], 2, True),        # 3 of 3 agree under "3 of 5": 3 > 0 + 2
    (["a", "a", "b"], 2, False),       # two more "b" make it a:2 b:3: the label can change
    (["a", "a"], 3, False),
    (["a", "a", "a", "b"], 1, True),
    (["a", "a", "b", "b"], 1, False),
    ([], 5, False),
    (["a"], 0, False),                 # nothing left to save
])
def test_settled_matches_the_closed_form_for_majority_vote(labels, remaining, settled):
    assert label_settled(labels, remaining, VALUES, majority) is settled
    assert majority_settled(labels, remaining) is settled


def test_vectorised_closed_form():
    counts = [[3, 0, 0], [2, 1, 0], [3, 1, 0], [2, 2, 0]]
    assert list(majority_settled_counts(counts, [2, 2, 1, 1])) == [True, False, True, False]


def test_generic_check_follows_a_threshold_rule():
    """Salient's "spurious if >= 3 of 5 answer b or c": a, b, c leaves it open; b, c, c settles it."""
    rule = ThresholdVote(positive_values={"b", "c"}, threshold=3, wanted=5)

    def aggregate(table: pd.DataFrame) -> pd.DataFrame:
        return rule.fit(table).table_

    assert not label_settled(["a", "b", "c"], 2, VALUES, aggregate)
    assert label_settled(["b", "c", "c"], 2, VALUES, aggregate)
    assert label_settled(["a", "a", "a"], 2, VALUES, aggregate)  # core whatever follows
    assert not majority_settled(["a", "b", "c"], 2)


def answer(worker, choice):
    a = services.assignment_claim_next(worker=worker)
    services.assignment_submit(assignment_id=a.pk, worker=worker, payload={"choice": choice, "confidence": 3},
                               token=assignment_token(a))
    return a


def test_study_stops_a_settled_task_and_reports_the_savings(make_study, make_worker, researcher,
                                                            django_capture_on_commit_callbacks):
    study = make_study(images=["astronaut"], workers_per_task=5, early_stopping=True, reward_cents=10)
    workers = [make_worker() for _ in range(5)]
    for w in workers[:2]:
        answer(w, "person")
    assert not Task.objects.get().stopped_early
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        answer(workers[2], "person")
    assert len(callbacks) == 1  # the recruiter is told to stop offering the task
    task = Task.objects.get()
    assert task.stopped_early and (task.wanted, task.filled, task.approved) == (3, 3, 3)
    assert services.assignment_claim_next(worker=workers[3]) is None
    services.study_close(study=study)
    services.study_aggregate(study=study)
    result = study.results.get()
    assert result.label == "person" and result.complete and result.n_answers == 3
    client = Client()
    client.force_login(researcher)
    body = client.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert "<b>2</b> answers and <b>20.00¢</b> saved" in body
    quality = client.get(reverse("study_export", args=[study.pk, "quality.json"])).json()
    assert quality["early_stopping"] == {"enabled": True, "tasks_stopped": 1, "answers_saved": 2, "cents_saved": 20.0}


def test_disagreement_keeps_collecting(make_study, make_worker):
    make_study(images=["astronaut"], workers_per_task=5, early_stopping=True)
    for choice in ["person", "animal", "person"]:
        answer(make_worker(), choice)
    assert not Task.objects.get().stopped_early
    answer(make_worker(), "person")  # 3 vs 1 with one left: settled
    assert Task.objects.get().stopped_early and Task.objects.get().wanted == 4


def test_off_by_default(make_study, make_worker):
    make_study(images=["astronaut"], workers_per_task=5)
    for _ in range(3):
        answer(make_worker(), "person")
    assert not Task.objects.get().stopped_early and Task.objects.get().wanted == 5
