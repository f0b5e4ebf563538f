"""Early stopping in live studies: a task stops once its full-answer label is predicted
(``annotation.selectors.stopping_policy``),
weighing each answer by its worker's reliability; stopped tasks refuse further assignments."""
from __future__ import annotations

import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse

from analysis.aggregation import MajorityVote, ThresholdVote
from analysis.aggregation.majority_settled import majority_settled, majority_settled_counts
from analysis.aggregation.reliability import CrowdModel
from analysis.aggregation.stopping import Settled, VoteSpace
from annotation import services
from annotation.models import Assignment, Task
from annotation.selectors.stopping_policy import with_stop_labels
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
    space = VoteSpace(VALUES, majority, len(labels) + remaining)
    model = CrowdModel(n_labels=3)
    assert Settled().decide(space, labels, list(range(len(labels))), remaining, model).stop is settled
    assert majority_settled(labels, remaining) is settled


def test_vectorised_closed_form():
    counts = [[3, 0, 0], [2, 1, 0], [3, 1, 0], [2, 2, 0]]
    assert list(majority_settled_counts(counts, [2, 2, 1, 1])) == [True, False, True, False]


def test_settled_follows_a_threshold_rule():
    """Salient's "spurious if >= 3 of 5 answer b or c": a, b, c leaves it open; b, c, c settles it."""
    rule = ThresholdVote(positive_values={"b", "c"}, threshold=3, wanted=5)
    space = VoteSpace(VALUES, lambda table: rule.fit(table).table_, 5)
    model, workers = CrowdModel(n_labels=2), [0, 1, 2]
    assert not Settled().decide(space, ["a", "b", "c"], workers, 2, model).stop
    assert Settled().decide(space, ["b", "c", "c"], workers, 2, model).label == "spurious"
    assert Settled().decide(space, ["a", "a", "a"], workers, 2, model).label == "core"  # whatever follows


def claim(worker):
    return Assignment.objects.select_related("task").get(pk=services.assignment_claim_next(worker=worker).pk)


def submit(worker, a, choice=None):
    choice = choice or a.task.truth["choice"]
    services.assignment_submit(assignment_id=a.pk, worker=worker, payload={"choice": choice, "confidence": 3},
                               token=assignment_token(a))
    return a


def answer(worker, choice=None):
    return submit(worker, claim(worker), choice)


def test_study_stops_a_settled_task_and_reports_the_savings(make_study, make_worker, researcher,
                                                            django_capture_on_commit_callbacks):
    study = make_study(images=["astronaut"], workers_per_task=5, early_stopping=True, reward_cents=10)
    workers = [make_worker() for _ in range(5)]
    for w in workers[:2]:
        answer(w, "person")
    assert not Task.objects.get().stopped_early  # two workers nobody knows yet: not enough
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        answer(workers[2], "person")
    assert len(callbacks) == 1  # the recruiter is told to stop offering the task
    task = Task.objects.get()
    assert task.stopped_early and (task.wanted, task.filled, task.approved, task.stop_label) == (3, 3, 3, "person")
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


GOLD = ["rocket", "coins", "clock", "grass", "gravel"]


@pytest.fixture
def gold_study(make_study, researcher):
    """Object or texture? Two normal tasks (coffee, brick) and five gold ones served first (gold rate 0.9);
    nobody is excluded for failing gold, so an unreliable worker keeps answering."""
    study = make_study(images=["coffee", "brick", *GOLD], workers_per_task=5, live=False, early_stopping=True,
                       gold_rate=0.9, gold_min_accuracy=0.0,
                       settings={"options": [["object", "Object"], ["texture", "Texture"]]})
    for task in study.tasks.filter(key__in=[f"img-{name}" for name in GOLD]):
        services.task_set_gold(researcher=researcher, task=task, truth_label=task.truth["choice"])
    services.study_launch(study=study)
    return study


def do_gold(worker, wrong: tuple[int, ...] = ()) -> None:
    """The worker answers the five gold tasks, those at the positions ``wrong`` wrongly."""
    for i in range(len(GOLD)):
        a = claim(worker)
        assert a.task.is_gold
        truth = a.task.truth["choice"]
        submit(worker, a, ({"object": "texture", "texture": "object"}[truth]) if i in wrong else None)


def test_workers_proven_on_gold_stop_a_task_at_two_answers(gold_study, make_worker,
                                                           django_capture_on_commit_callbacks):
    first, second, late, other = (make_worker() for _ in range(4))
    for worker in (first, second, late, other):
        do_gold(worker)
    answer(first)  # coffee: object
    in_flight = claim(late)  # holds a slot of coffee while the second answer comes
    assert in_flight.task.key == "img-coffee"
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        answer(second)
    coffee = Task.objects.get(key="img-coffee")
    # The old rule (the label settled whatever the three missing answers say) needs a third answer.
    assert coffee.stopped_early and coffee.stop_label == "object" and len(callbacks) == 1
    assert (coffee.wanted, coffee.filled) == (3, 3)  # the open assignment may still answer; nobody else
    assert claim(other).task.key == "img-brick"
    # The late answer disagrees: the label is no longer predicted well enough and the task reopens.
    submit(late, in_flight, "texture")
    coffee.refresh_from_db()
    assert not coffee.stopped_early and coffee.wanted == 5 and coffee.stop_label == ""


def test_weak_evidence_keeps_a_task_open(gold_study, make_worker):
    reliable, careless = make_worker(), make_worker()
    do_gold(reliable)
    do_gold(careless, wrong=(0, 2, 4))  # right on 2 of 5: no better than chance
    answer(reliable, "object")  # coffee
    answer(careless, "object")
    coffee = Task.objects.get(key="img-coffee")
    assert not coffee.stopped_early and coffee.wanted == 5  # two agreeing answers, one of them worth little


def test_a_returned_assignment_does_not_reopen_a_stopped_task(make_study, make_worker):
    make_study(images=["astronaut"], workers_per_task=5, early_stopping=True)
    workers = [make_worker() for _ in range(5)]
    answer(workers[0], "person")
    answer(workers[1], "person")
    open_one = claim(workers[2])
    answer(workers[3], "person")  # 3 of 5 agree: stopped, with one assignment still open
    task = Task.objects.get()
    assert task.stopped_early and (task.wanted, task.filled) == (4, 4)
    services.assignment_return(assignment_id=open_one.pk, worker=workers[2], token=assignment_token(open_one))
    task.refresh_from_db()
    assert task.stopped_early and (task.wanted, task.filled) == (3, 3)
    assert services.assignment_claim_next(worker=workers[4]) is None  # the freed slot is not offered again


def test_rejecting_an_answer_a_stop_rested_on_reopens_the_task(make_study, make_worker):
    make_study(images=["astronaut"], workers_per_task=5, early_stopping=True)
    given = [answer(make_worker(), "person") for _ in range(3)]
    assert Task.objects.get().stopped_early
    services.assignment_reject(assignment=given[0])
    task = Task.objects.get()
    assert not task.stopped_early and (task.wanted, task.filled) == (5, 2)


def test_aggregation_gives_a_stopped_task_its_stop_label(make_study):
    study = make_study(images=["astronaut", "chelsea"], workers_per_task=5)
    first, second = study.tasks.order_by("id")
    Task.objects.filter(pk=first.pk).update(stopped_early=True, stop_label="person")
    table = pd.DataFrame({"label": [None, None]}, index=[first.pk, second.pk])
    assert list(with_stop_labels(study, table)["label"]) == ["person", None]
