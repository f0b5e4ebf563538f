"""Agreement and Dawid-Skene: Fleiss' kappa and Krippendorff's alpha on hand-computed tables, DS via crowd-kit."""
from __future__ import annotations

import csv
import io
import math

import numpy as np
import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse

from analysis.aggregation import DawidSkene, MajorityVote
from analysis.aggregation.agreement import count_matrix, fleiss_kappa, krippendorff_alpha
from analysis.aggregation.worker_quality import gold_accuracy, worker_report
from annotation import selectors, services
from annotation.tokens import assignment_token


def test_fleiss_kappa_hand_computed():
    """Three tasks, three raters, two labels.

    counts [[3,0],[0,3],[2,1]]: P_i = 1, 1, (4+1-3)/6 = 1/3 -> P_bar = 7/9;
    p = (5/9, 4/9) -> P_e = 41/81; kappa = (7/9 - 41/81) / (1 - 41/81) = (22/81) / (40/81) = 0.55.
    """
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [2, 1]])) == pytest.approx(0.55)


def test_fleiss_kappa_published_example():
    """Fleiss (1971) as in the Wikipedia article: 10 subjects, 14 raters, 5 categories -> 0.210."""
    table = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                      [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert round(fleiss_kappa(table), 3) == 0.210


def test_fleiss_kappa_edge_cases():
    assert fleiss_kappa(np.array([[3, 0], [3, 0]])) != fleiss_kappa(np.array([[3, 0], [0, 3]]))
    assert fleiss_kappa(np.array([[3, 0], [0, 3]])) == pytest.approx(1.0)
    assert math.isnan(fleiss_kappa(np.array([[1, 0]])))  # a single answer per task says nothing


def test_krippendorff_alpha_hand_computed():
    """Two tasks, two coders each: [a, a] and [a, b].

    Coincidences: o_aa = 2 + 0 = 2, o_ab = o_ba = 1 -> n_a = 3, n_b = 1, n = 4.
    D_o = (o_ab + o_ba) / n = 2/4; D_e = 2 * n_a * n_b / (n (n - 1)) = 6/12.
    alpha = 1 - D_o / D_e = 0.
    Then [a, a], [b, b], [a, b]: D_o = 2/6, n_a = n_b = 3, D_e = 18/30 -> alpha = 1 - (1/3)/(3/5) = 4/9.
    """
    assert krippendorff_alpha(np.array([[2, 0], [1, 1]])) == pytest.approx(0.0)
    assert krippendorff_alpha(np.array([[2, 0], [0, 2], [1, 1]])) == pytest.approx(4 / 9)


def test_krippendorff_alpha_published_example():
    """Krippendorff (2011), 4 coders x 12 units with missing values, nominal: alpha = 0.743."""
    data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
            [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    answers = pd.DataFrame([(u, c, str(v)) for c, row in enumerate(data) for u, v in enumerate(row) if v is not None],
                           columns=["task", "worker", "label"])
    assert round(krippendorff_alpha(count_matrix(answers)), 3) == 0.743


def spammer_table(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """40 tasks, 3 good workers (90 %) and one spammer who always answers "a"."""
    rng = np.random.default_rng(seed)
    labels = np.array(["a", "b", "c"])
    truth = pd.Series(rng.choice(labels, 40), index=range(40))
    rows = []
    for task, true in truth.items():
        for worker in ["good1", "good2", "good3"]:
            answer = true if rng.random() < 0.9 else rng.choice(labels[labels != true])
            rows.append((task, worker, answer))
        rows.append((task, "spammer", "a"))
    return pd.DataFrame(rows, columns=["task", "worker", "label"]), truth


def test_dawid_skene_outvotes_the_spammer_and_scores_workers():
    answers, truth = spammer_table()
    ds = DawidSkene().fit(answers)
    assert (ds.labels_.reindex(truth.index) == truth).mean() >= 0.95
    accuracy = ds.worker_accuracy_
    assert accuracy.idxmin() == "spammer" and accuracy["spammer"] < 0.5
    assert min(accuracy[["good1", "good2", "good3"]]) > 0.8
    assert ((ds.confidence_ > 0) & (ds.confidence_ <= 1)).all()
    mv = MajorityVote().fit(answers).table_["label"]
    report = worker_report(answers, mv, truth.iloc[:10], accuracy)
    assert report.loc["spammer", "majority_agreement"] < report.loc["good1", "majority_agreement"]
    assert report.loc["good1", "gold_answers"] == 10


def test_gold_accuracy_per_worker():
    answers = pd.DataFrame({"task": [1, 2, 1, 2, 3], "worker": ["x", "x", "y", "y", "y"],
                            "label": ["a", "b", "a", "a", "c"]})
    table = gold_accuracy(answers, pd.Series({1: "a", 2: "b"}))
    assert table.loc["x", "gold_accuracy"] == 1.0 and table.loc["y", "gold_accuracy"] == 0.5
    assert table.loc["y", "gold_answers"] == 2


def test_study_page_and_exports_show_agreement_and_workers(make_study, make_worker, researcher):
    study = make_study(images=["astronaut", "chelsea", "coffee"], workers_per_task=3)
    workers = [make_worker(f"w{i}") for i in range(3)]
    for i, worker in enumerate(workers):
        while (a := services.assignment_claim_next(worker=worker)) is not None:
            choice = a.task.truth["choice"] if i < 2 else "animal"
            services.assignment_submit(assignment_id=a.pk, worker=worker, payload={"choice": choice, "confidence": 3},
                                       token=assignment_token(a))
    services.study_close(study=study)
    services.study_aggregate(study=study)
    study.refresh_from_db()
    expected_counts = count_matrix(selectors.study_label_answers(study=study, label_field="choice"),
                                   ["person", "animal", "object", "scene"])
    assert study.quality["fleiss_kappa"] == round(fleiss_kappa(expected_counts), 4)
    assert study.quality["krippendorff_alpha"] == round(krippendorff_alpha(expected_counts), 4)
    client = Client()
    client.force_login(researcher)
    body = client.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert f'id="fleiss-kappa">{study.quality["fleiss_kappa"]}' in body and 'id="workers-table"' in body
    rows = list(csv.DictReader(io.StringIO(
        client.get(reverse("study_export", args=[study.pk, "workers.csv"])).content.decode())))
    by_worker = {r["worker"]: r for r in rows}
    assert set(by_worker) == {"w0", "w1", "w2"}
    assert float(by_worker["w0"]["majority_agreement"]) == 1.0
    assert float(by_worker["w2"]["majority_agreement"]) < 1.0
    labels = list(csv.DictReader(io.StringIO(
        client.get(reverse("study_export", args=[study.pk, "labels.csv"])).content.decode())))
    truth = {str(t.pk): t.truth["choice"] for t in study.tasks.all()}
    assert {r["task"]: r["ds_label"] for r in labels} == truth
    assert all(0 < float(r["ds_probability"]) <= 1 for r in labels)
