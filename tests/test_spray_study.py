"""The SpRAy study (``cluster_review``) on the tiny benchmark: the evidence job stores the class ranking
and plots, the results page shows them, the crowd reviews clusters, the artifact tests and the un-Hans
job run, and the worker page works in a real browser."""
import json

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.models import Study
from tests.conftest import TINY_BENCHMARK, TINY_TRAINING
from tests.study_helpers import aggregate, crowd_answers, output_files, read_csv, sign_in, study_from_form

pytestmark = pytest.mark.slow

FORM = {
    "name": "spray", "kind": "cluster_review", "workers_per_task": 5, "reward_cents": 0, "assignment_minutes": 30,
    "backend": "internal", "s-dataset": "benchmark", "s-model": "standard", "s-classes": "", "s-per_class": 40,
    "s-size": 16, "s-metric": "euclidean", "s-max_k": 6, "s-review_classes": 2, "s-examples": 4,
    "s-min_cluster_size": 3, "s-reason_min_length": 5, "s-benchmark": json.dumps(TINY_BENCHMARK),
    "s-training": json.dumps(TINY_TRAINING),
}


@pytest.fixture
def spray_study(researcher_client, django_capture_on_commit_callbacks):
    """A cluster_review study created through the form, its evidence computed (eager job)."""
    return study_from_form(researcher_client, FORM, django_capture_on_commit_callbacks)


def test_evidence_stores_ranking_plots_and_cluster_tasks(spray_study, researcher_client):
    study = spray_study
    files = output_files(study)
    assert set(study.outputs.values_list("stage", flat=True)) == {"evidence"}
    ranking = read_csv(files["spray_ranking.csv"])
    assert sorted(int(r["class"]) for r in ranking) == [0, 1, 2, 3]
    taus = [float(r["tau"]) for r in ranking]
    assert taus == sorted(taus, reverse=True) and taus[0] > 0
    for cls in range(4):
        for plot in (f"eigenvalues_{cls}.png", f"umap_{cls}.png", f"clusters_{cls}.png"):
            assert files[plot][:8] == b"\x89PNG\r\n\x1a\n", plot
    summary = json.loads(files["spray_summary.json"])
    assert [c["class"] for c in summary["classes"]] == [int(r["class"]) for r in ranking]

    # Tasks: the clusters (of at least 3 images) of the two top classes, each with its members' indices.
    top = {int(r["class"]) for r in ranking[:2]}
    tasks = list(study.tasks.all())
    assert tasks and {t.payload["cls"] for t in tasks} == top
    for cls in top:
        entry = next(c for c in summary["classes"] if c["class"] == cls)
        big = [c for c in entry["clusters"] if c["size"] >= 3]
        mine = [t for t in tasks if t.payload["cls"] == cls]
        assert sorted(t.payload["cluster"] for t in mine) == sorted(c["cluster"] for c in big)
        assert sum(t.payload["size"] for t in mine) == sum(c["size"] for c in big)
    for task in tasks:
        assert len(task.payload["examples"]) == min(4, task.payload["size"])
        assert len(task.payload["indices"]) == task.payload["size"]
        assert task.truth["focus"] in ("object", "separate_object", "background", "artifact")

    # The results page: ranking rows in tau order, a section and plots per class, the un-Hans form.
    page = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
    rows = page.split('id="ranking-table"')[1].split("</table>")[0].count("<tr data-class=")
    assert rows == 4
    for cls in range(4):
        assert f'id="class-{cls}"' in page and f"/outputs/clusters_{cls}.png" in page
    assert 'action="/studies/%d/jobs/unhans/"' % study.pk in page
    detail = researcher_client.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert reverse("study_results", args=[study.pk]) in detail


def test_crowd_review_artifact_tests_and_unhans(spray_study, researcher_client, make_worker,
                                                django_capture_on_commit_callbacks):
    study = spray_study
    services.study_launch(study=study)
    tasks = list(study.tasks.all())
    # The reviewers call the cluster richest in watermark images an artifact; the rest get simulated answers.
    from analysis.spray.benchmark_review import cue_share
    from annotation.task_kinds.cluster_review import _inputs

    bench = _inputs(services.study_context(study), lambda *a: None)[0]
    marked = max(tasks, key=lambda t: cue_share(bench, np.asarray(t.payload["indices"]))["watermark"])
    for t in tasks:
        t.truth = {"focus": "artifact" if t.pk == marked.pk else "object"}
        t.save(update_fields=["truth"])
    assert crowd_answers(study, make_worker, accuracy=1.0) == 5 * len(tasks)
    files = aggregate(study, django_capture_on_commit_callbacks)
    labels = read_csv(files["cluster_labels.csv"])
    assert len(labels) == len(tasks)
    assert {r["task"] for r in labels if r["label"] == "artifact"} == {marked.key}
    marked_row = next(r for r in labels if r["task"] == marked.key)
    assert float(marked_row["share_watermark"]) == pytest.approx(
        cue_share(bench, np.asarray(marked.payload["indices"]))["watermark"], abs=1e-4)
    for r in labels:
        shares = [float(r[f"share_{k}"]) for k in ("background", "watermark", "object")]
        assert all(0 <= v <= 1 for v in shares) and sum(shares) <= 1 + 1e-6
    tests = read_csv(files["artifact_tests.csv"])
    assert {r["test"] for r in tests} == {"paste", "remove"}
    for r in tests:
        assert r["task"] == marked.key and int(r["n"]) > 0 and int(r["mask_pixels"]) > 0
        assert float(r["delta_prob"]) == pytest.approx(float(r["prob_after"]) - float(r["prob_before"]), abs=1e-6)
    # The evidence files are still there beside the outputs.
    assert {"spray_ranking.csv", "cluster_labels.csv"} <= set(files)
    page = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
    assert 'id="artifact-table"' in page and page.count(marked.key) >= 2

    # Un-Hans: bad input is refused naming the field and queues nothing; a good one retrains.
    url = reverse("study_job_start", args=[study.pk, "unhans"])
    reply = researcher_client.post(url, {"unhans-cluster": "no-such-cluster"}, HTTP_ACCEPT="application/json")
    assert reply.status_code == 400 and "cluster" in reply.json()["error"]
    assert not study.jobs.filter(name="unhans").exists()
    assert researcher_client.post(reverse("study_job_start", args=[study.pk, "nope"])).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        reply = researcher_client.post(url, {"unhans-cluster": marked.key}, HTTP_ACCEPT="application/json")
    assert reply.status_code == 202, reply.content
    job = study.jobs.get(name="unhans")
    assert job.state == "done", job.error
    report = json.loads(output_files(study)["unhans.json"])
    assert report["cluster"] == marked.key and report["excluded"] == marked.payload["size"]
    assert report["train_images"] == 4 * TINY_BENCHMARK["train_per_class"] - marked.payload["size"]
    for when in ("before", "after"):
        assert 0 <= report[when]["flipped_accuracy"] <= 1 and 0 <= report[when]["class_test_accuracy"] <= 1
    assert "cluster_labels.csv" in output_files(study)  # the un-Hans files did not replace the outputs
    page = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
    assert 'id="unhans-table"' in page


def test_kind_jobs_check_who_asks_and_when(researcher, other_researcher, researcher_client):
    study = services.study_create(owner=researcher, name="draft-spray", kind="cluster_review",
                                  settings={"benchmark": TINY_BENCHMARK, "training": TINY_TRAINING})
    url = reverse("study_job_start", args=[study.pk, "unhans"])
    other = Client()
    other.force_login(other_researcher)
    assert other.post(url, {"unhans-cluster": "x"}).status_code == 404
    assert other.get(reverse("study_results", args=[study.pk])).status_code == 404
    anonymous = Client().post(url, {"unhans-cluster": "x"})
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    # No evidence yet: no cluster to choose, and the service refuses a draft study.
    reply = researcher_client.post(url, {"unhans-cluster": "x"}, HTTP_ACCEPT="application/json")
    assert reply.status_code == 400
    from annotation.errors import ApplicationError

    with pytest.raises(ApplicationError, match="needs the study's evidence"):
        services.study_start_kind_job(study=study, name="unhans", params={"cluster": "x"})
    assert not study.jobs.exists()
    page = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
    assert 'id="no-results"' in page
    # Kinds without a results page say so.
    plain = services.study_create(owner=researcher, name="plain", kind="image_choice",
                                  settings={"images": ["astronaut"]})
    assert researcher_client.get(reverse("study_results", args=[plain.pk])).status_code == 404


def test_settings_form_names_bad_values(researcher_client):
    reply = researcher_client.post(reverse("study_create"), {**FORM, "name": "bad", "s-metric": "gromov_wasserstein",
                                                             "s-size": 32, "s-classes": "1,x"})
    assert reply.status_code == 400
    page = reply.content.decode()
    assert "size ≤ 12" in page and "whole numbers" in page
    assert not Study.objects.filter(name="bad").exists()


@pytest.mark.browser
def test_worker_reviews_a_cluster_in_the_browser(spray_study, live_server, page, make_worker):
    from annotation.models import Answer

    services.study_launch(study=spray_study)
    make_worker("reviewer")
    sign_in(page, live_server.url, "reviewer")
    page.click("#next-task")
    page.wait_for_selector("text=What do these heatmaps focus on?")
    rows = page.locator(".panel-row")
    assert rows.count() == 2 and rows.nth(0).locator("img").count() == rows.nth(1).locator("img").count() > 0
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    assert page.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)")
    page.keyboard.press("4")  # an artifact
    page.fill("textarea[name=reason]", "a small mark in the top corner")
    page.click("#submit-answer")
    page.wait_for_selector("text=Answer saved")
    answer = Answer.objects.get(task__study=spray_study)
    assert answer.payload == {"focus": "artifact", "reason": "a small mark in the top corner"}
