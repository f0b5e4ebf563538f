"""The SpRAy study (``cluster_review``) on the tiny benchmark: the evidence job stores the class ranking
and plots, the results page shows them, the crowd reviews clusters, the artifact tests and both un-Hans
jobs run (fine-tuning on subsets A and B; retraining without a cluster), train and validation images are
embedded together with the GW options of the form, and the worker page works in a real browser."""
import json
import re

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
    "s-size": 16, "s-preprocessing": "pooled", "s-metric": "euclidean", "s-max_k": 6, "s-review_classes": 2,
    "s-examples": 4,
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
    assert 'action="/studies/%d/jobs/unhans_drop/"' % study.pk in page
    assert ("from the training images pooled to 16×16 and divided by their total relevance, euclidean distances"
            in page) and "without cluster-size weights" in page
    detail = researcher_client.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert reverse("study_results", args=[study.pk]) in detail

    # One cluster numbering (issue 28): from 1 in the summary, the tables, the task keys and payloads, the
    # un-Hans form; the task keys carry the class name; every figure is a link to itself at full size.
    names = {c["class"]: c["name"] for c in summary["classes"]}
    for entry in summary["classes"]:
        assert sorted(c["cluster"] for c in entry["clusters"]) == list(range(1, entry["k"] + 1))
        table = page.split(f'id="class-{entry["class"]}"')[1].split("</table>")[0]
        first_cells = [row.split("<td>")[1].split("</td>")[0] for row in table.split("<tbody>")[1].split("<tr>")[1:]]
        cells = [int(re.sub(r"<[^>]+>", "", cell)) for cell in first_cells]
        assert cells == [c["cluster"] for c in entry["clusters"]]
    for task in tasks:
        assert task.key.endswith(f"-k{task.payload['k']}-cluster{task.payload['cluster']}")
        words = re.findall(r"[a-z0-9]+", names[task.payload["cls"]].lower())
        assert task.key.startswith(f"c{task.payload['cls']}-{'_'.join(words)}-")
        assert f"{task.payload['class_name']} · cluster {task.payload['cluster']} (" in page  # the un-Hans choices
    for cls in range(4):
        url = f"/studies/{study.pk}/outputs/umap_{cls}.png"
        assert f'<a class="figure-link" href="{url}" target="_blank"' in page


def test_crowd_review_artifact_tests_and_unhans(spray_study, researcher_client, make_worker,
                                                django_capture_on_commit_callbacks):
    study = spray_study
    services.study_launch(study=study)
    tasks = list(study.tasks.all())
    # The reviewers call the cluster richest in watermark images an artifact; the rest get simulated answers.
    from analysis.spray.benchmark_review import cue_share
    from annotation.task_kinds.spray_jobs import spray_inputs

    bench = spray_inputs(services.study_context(study), lambda *a: None)[0]
    marked = max(tasks, key=lambda t: cue_share(bench, {"train": np.asarray(t.payload["indices"])})["watermark"])
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
        cue_share(bench, {"train": np.asarray(marked.payload["indices"])})["watermark"], abs=1e-4)
    for r in labels:
        shares = [float(r[f"share_{k}"]) for k in ("background", "watermark", "object")]
        assert all(0 <= v <= 1 for v in shares) and sum(shares) <= 1 + 1e-6
    tests = read_csv(files["artifact_tests.csv"])
    assert {r["test"] for r in tests} == {"paste", "remove"}
    for r in tests:
        assert r["task"] == marked.key and int(r["mask_pixels"]) > 0
        if not int(r["n"]):
            continue
        assert float(r["delta_prob"]) == pytest.approx(float(r["prob_after"]) - float(r["prob_before"]), abs=1e-6)
        assert float(r["delta_rank"]) == pytest.approx(float(r["rank_before"]) - float(r["rank_after"]), abs=1e-6)
    # Removal inpaints only the affected validation images, never training images (§3.2, Fig. 8): the class's
    # validation images with its planted cue, or, for a class without one (T-shirt here: Coat is not among the
    # two reviewed classes), the validation images in the cluster -- none, as only training images were
    # embedded, so no removal test. Paste: up to 500 other classes' validation images (all of them here).
    from analysis.datasets.benchmark import BIAS_KINDS
    from annotation.task_kinds.spray_jobs import planted_cue

    cls, test = marked.payload["cls"], bench.split("test")
    remove = next(r for r in tests if r["test"] == "remove")
    kind = planted_cue(bench, cls)
    if kind is None:
        assert int(remove["n"]) == 0 and remove["affected"].startswith("none")
    else:
        carrying = (test.labels == cls) & (test.bias_kinds == BIAS_KINDS.index(kind))
        assert int(remove["n"]) == int(carrying.sum()) and kind in remove["affected"]
    assert int(remove["n"]) != int(np.sum(test.labels == cls))
    assert int(next(r for r in tests if r["test"] == "paste")["n"]) == int(np.sum(test.labels != cls))
    # The evidence files are still there beside the outputs.
    assert {"spray_ranking.csv", "cluster_labels.csv"} <= set(files)
    page = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
    assert 'id="artifact-table"' in page and page.count(marked.key) >= 2

    # Un-Hans as §3.3: bad input is refused naming the field and queues nothing; a good one fine-tunes on A and B.
    url = reverse("study_job_start", args=[study.pk, "unhans"])
    good = {"unhans-cluster": marked.key, "unhans-n_others": 2, "unhans-others": "confusion",
            "unhans-train_per_class": 20, "unhans-epochs": 2, "unhans-lr": 0.01, "unhans-seed": 0}
    for field, bad in (("cluster", "no-such-cluster"), ("epochs", 0), ("n_others", 4), ("lr", -1), ("others", "all")):
        reply = researcher_client.post(url, {**good, f"unhans-{field}": bad}, HTTP_ACCEPT="application/json")
        assert reply.status_code == 400 and f"{field}:" in reply.json()["error"], (field, reply.content)
    assert not study.jobs.filter(name="unhans").exists()
    assert researcher_client.post(reverse("study_job_start", args=[study.pk, "nope"])).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        reply = researcher_client.post(url, good, HTTP_ACCEPT="application/json")
    assert reply.status_code == 202, reply.content
    job = study.jobs.get(name="unhans")
    assert job.state == "done", job.error
    files = output_files(study)
    table = read_csv(files["unhans_table2.csv"])
    assert [r["model"] for r in table] == ["trained", "A", "B"]
    assert all(0 <= float(r[c]) <= 1 for r in table for c in ("clean_accuracy", "artifact_accuracy"))
    report = json.loads(files["unhans_table2.json"])
    assert report["cluster"] == marked.key and report["classes"][0]["index"] == cls and len(report["classes"]) == 3
    assert report["train_images"] == 3 * 20 and report["plots"] == {"1": "unhans_epoch1.png", "2": "unhans_epoch2.png"}
    # Subset B leaves the training images that carry the artifact as they are: the planted cue, or the cluster's.
    first = np.flatnonzero(bench.split("train").labels == cls)[:20]
    carry = (np.isin(first, marked.payload["indices"]) if kind is None
             else bench.split("train").bias_kinds[first] == BIAS_KINDS.index(kind))
    assert report["carriers"] == int(carry.sum()) and report["sample_carries_artifact"] == (kind is not None)
    # Clean = cue-free validation images; the planted cue's true mask against the isolated artifact (IoU).
    assert report["val_clean_images"] + report["val_carrying_images"] == report["val_images"]
    assert (report["artifact_iou"] is None) == (kind is None)
    if kind is not None:
        assert 0 <= report["artifact_iou"] <= 1 and report["val_carrying_images"] > 0
        assert all(r["carrying_accuracy"] != "" for r in table)
    for name in ("unhans_start.png", "unhans_epoch1.png", "unhans_epoch2.png"):
        assert files[name][:8] == b"\x89PNG\r\n\x1a\n"
    print("Table 2 (tiny benchmark, 20 train images per class, 2 epochs):", table)
    page = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
    section = page.split('id="unhans-table"')[1].split("</table>")[0]
    assert section.count("<tr data-model=") == 3 and "/outputs/unhans_epoch2.png" in page

    # The blunter option: retrain without the cluster's training images.
    url = reverse("study_job_start", args=[study.pk, "unhans_drop"])
    reply = researcher_client.post(url, {"unhans_drop-cluster": "no-such-cluster"}, HTTP_ACCEPT="application/json")
    assert reply.status_code == 400 and "cluster" in reply.json()["error"]
    with django_capture_on_commit_callbacks(execute=True):
        reply = researcher_client.post(url, {"unhans_drop-cluster": marked.key}, HTTP_ACCEPT="application/json")
    assert reply.status_code == 202, reply.content
    job = study.jobs.get(name="unhans_drop")
    assert job.state == "done", job.error
    report = json.loads(output_files(study)["unhans.json"])
    assert report["cluster"] == marked.key and report["excluded"] == marked.payload["size"]
    assert report["train_images"] == 4 * TINY_BENCHMARK["train_per_class"] - marked.payload["size"]
    for when in ("before", "after"):
        assert 0 <= report[when]["flipped_accuracy"] <= 1 and 0 <= report[when]["class_test_accuracy"] <= 1
    assert {"cluster_labels.csv", "unhans_table2.csv"} <= set(output_files(study))  # no job replaced another's files
    page = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
    assert 'id="unhans-drop-table"' in page and 'id="unhans-table"' in page


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
    # Another kind's results page offers no un-Hans form, and its study refuses the job.
    plain = services.study_create(owner=researcher, name="plain", kind="image_choice",
                                  settings={"images": ["astronaut"]})
    assert "/jobs/unhans/" not in researcher_client.get(reverse("study_results", args=[plain.pk])).content.decode()
    with pytest.raises(ApplicationError):
        services.study_start_kind_job(study=plain, name="unhans", params={"cluster": "x"})


def test_settings_form_names_bad_values(researcher_client):
    reply = researcher_client.post(reverse("study_create"), {**FORM, "name": "bad", "s-metric": "gromov_wasserstein",
                                                             "s-size": 32, "s-classes": "1,x"})
    assert reply.status_code == 400
    page = reply.content.decode()
    assert "size ≤ 16" in page and "whole numbers" in page
    assert not Study.objects.filter(name="bad").exists()


def test_joint_train_and_validation_embedding_with_gw_options(researcher_client, django_capture_on_commit_callbacks,
                                                              monkeypatch):
    """Fig. 8: training and validation images embedded together, with the form's GW options, clustering space
    and tau weighting passed on to SpRAy; each cluster counts its validation images, the UMAP marks them."""
    import analysis.spray.dataset as dataset

    calls = []
    original = dataset.spray_class

    def recording(maps, **kwargs):
        calls.append({"n": len(maps), **{k: kwargs[k] for k in ("metric", "gw_options", "space", "weighted_tau")}})
        return original(maps, **kwargs)

    monkeypatch.setattr(dataset, "spray_class", recording)
    # The smallest sizes the form takes (10 images per class of each split, a 4 x 4 grid, 10 GW candidates): 20
    # heatmaps per class, still above gw_prune_above, so GW is solved for each heatmap's candidates only (it was
    # 30 + 20 heatmaps of 8 x 8, 12 candidates).
    form = {**FORM, "name": "joint", "s-embed_split": "train+val", "s-per_class": 10, "s-size": 4,
            "s-metric": "gromov_wasserstein", "s-gw_solver": "entropic", "s-gw_epsilon": 0.05, "s-gw_candidates": 10,
            "s-gw_prune_above": 10, "s-space": "embedding", "s-weighted_tau": "on", "s-max_k": 4}
    study = study_from_form(researcher_client, form, django_capture_on_commit_callbacks)
    val_per_class = min(10, TINY_BENCHMARK["test_per_class"])  # per_class of each split
    options = {"solver": "entropic", "epsilon": 0.05, "candidates": 10, "prune_above": 10}
    assert calls == [{"n": 10 + val_per_class, "metric": "gromov_wasserstein", "gw_options": options,
                      "space": "embedding", "weighted_tau": True}] * 4
    files = output_files(study)
    summary = json.loads(files["spray_summary.json"])
    assert summary["settings"]["embed_split"] == "train+val" and summary["settings"]["gw_options"] == options
    for row in read_csv(files["spray_ranking.csv"]):
        assert int(row["n_heatmaps"]) == 10 + val_per_class and int(row["n_validation"]) == val_per_class
    for entry in summary["classes"]:
        assert sum(c["validation"] for c in entry["clusters"]) == val_per_class
        assert files[f"umap_{entry['class']}.png"][:8] == b"\x89PNG\r\n\x1a\n"
    tasks = list(study.tasks.all())
    assert tasks and any(t.payload["val_indices"] for t in tasks)
    for task in tasks:
        assert len(task.payload["indices"]) + len(task.payload["val_indices"]) == task.payload["size"]
        assert max(task.payload["val_indices"], default=0) < 4 * TINY_BENCHMARK["test_per_class"]
    page = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
    assert "embedded together" in page and "entropic solver" in page and "with cluster-size weights" in page
    assert page.count('class="validation-count"') == sum(len(c["clusters"]) for c in summary["classes"])


def test_heatmaps_come_from_sharded_lrp_passes_and_spray_equals_in_memory(
        researcher, settings, tmp_path, django_capture_on_commit_callbacks):
    """The pool's heatmaps are one streamed, sharded ``lrp`` pass per split (training and validation); the
    ranking and every reviewed cluster's members equal SpRAy on the whole pool held in memory."""
    from analysis.salient.benchmark_inputs import benchmark_inputs
    from analysis.spray.benchmark_review import Pool
    from analysis.spray.dataset import display_k, spray_classes
    from tests.study_helpers import computed_study

    settings.SALIENT_EVIDENCE_SHARDS, settings.SALIENT_EVIDENCE_BATCH = 3, 8
    settings.ARTIFACT_DIR = tmp_path / "artifacts"  # this study's shards only
    conf = {"benchmark": TINY_BENCHMARK, "training": TINY_TRAINING, "per_class": 24, "max_k": 4,
            "review_classes": 4, "examples": 3, "min_cluster_size": 1, "embed_split": "train+val"}
    study = computed_study(researcher, "cluster_review", "sharded", conf, django_capture_on_commit_callbacks,
                           live=False)
    shards = sorted((settings.ARTIFACT_DIR / "named" / "shards" / "lrp").rglob("*.npz"))
    assert len(shards) == 6  # three per split

    bench, handles, _ = benchmark_inputs(settings.SALIENT_BENCHMARK_DIR, benchmark=TINY_BENCHMARK,
                                         training=TINY_TRAINING, flavours=["standard"])
    pool = Pool.of(bench, ["train", "test"], range(4), 24)
    expected = spray_classes(handles["standard"], *pool.tensors(bench), ks=range(2, 5))  # the default: full maps
    ranking = read_csv(output_files(study)["spray_ranking.csv"])
    assert [int(r["class"]) for r in ranking] == [c for c, _ in expected.ranking]
    np.testing.assert_allclose([float(r["tau"]) for r in ranking], [t for _, t in expected.ranking], atol=1e-4)
    tasks = list(study.tasks.all())
    assert {t.payload["cls"] for t in tasks} == {0, 1, 2, 3}
    for task in tasks:
        entry = expected[task.payload["cls"]]
        assert task.payload["k"] == display_k(entry.result)
        members = pool.members(entry.indices[entry.result.labels[task.payload["k"]] == task.payload["cluster"] - 1])
        assert task.payload["indices"] == members["train"].tolist()
        assert task.payload["val_indices"] == members["test"].tolist()


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
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    assert page.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)")
    page.keyboard.press("4")  # an artifact
    page.fill("textarea[name=reason]", "a small mark in the top corner")
    page.click("#submit-answer")
    page.wait_for_selector("text=Answer saved")
    answer = Answer.objects.get(task__study=spray_study)
    assert answer.payload == {"focus": "artifact", "reason": "a small mark in the top corner"}
