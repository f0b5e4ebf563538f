"""The Salient study end to end on a tiny benchmark: evidence job, feature panels (solved examples,
gold copies, clean class examples) and heatmap validation (labels from the feature-panel study)
through the views, threshold labels, the Salient dataset, core/spurious accuracy and the results pages."""
import csv
import io
import json
import re
import zipfile

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from annotation import services
from annotation.models import Answer, Assignment, Study
from annotation.tokens import assignment_token
from annotation.task_kinds.feature_panel import REASONS
from demo.harness import salient_reference_export
from tests.analysis.test_salient_findings import ReferenceSalientImageNet
from tests.conftest import TINY_BENCHMARK, TINY_TRAINING
from tests.salient_checks import check_matched, check_reasons, check_reference_layout, check_statistics
from tests.test_api import api_client
from tests.study_helpers import computed_study, crowd_answers, made_archive, output_files, read_csv

pytestmark = pytest.mark.slow

TINY = {"benchmark": TINY_BENCHMARK, "training": TINY_TRAINING, "k_features": 2, "k_images": 3, "pool": 10,
        "attack_steps": 5}


def make_salient_study(researcher, kind, name, capture, live=True, **overrides):
    return computed_study(researcher, kind, name, {**TINY, **overrides}, capture, live=live)


def test_feature_panel_study_end_to_end(researcher, make_worker, django_capture_on_commit_callbacks, tmp_path):
    study = make_salient_study(researcher, "feature_panel", "salient", django_capture_on_commit_callbacks)
    tasks = list(study.tasks.filter(is_gold=False))
    assert len(tasks) == 4 * 2  # classes x top features
    gold = {t.key: t for t in study.tasks.filter(is_gold=True)}
    assert set(gold) == {f"gold-{t.key}" for t in tasks}  # every panel with a known answer has a gold copy
    assert all(gold[f"gold-{t.key}"].payload == t.payload and gold[f"gold-{t.key}"].truth == t.truth for t in tasks)
    assert study.gold_rate == 0.2  # the kind's default: gold panels are mixed in
    payload = tasks[0].payload
    assert len(payload["images"]) == len(payload["heatmaps"]) == len(payload["attacks"]) == 3
    assert len(payload["examples"]) == 3 and payload["class_name"]
    assert "planted bias" not in payload["class_description"]  # the answer is never shown
    assert {t.truth["main"] for t in tasks} <= {"main_object", "separate_object", "background"}
    solved = payload["solved"]
    assert [e["answer"] for e in solved] == [a for a in ("main_object", "separate_object", "background")
                                            if a in {t.truth["main"] for t in tasks}]
    assert all(len(e["heatmaps"]) == 3 for e in solved)

    # A worker sees the panel page; a missing reason is refused naming the field.
    worker = make_worker("panelist")
    client = Client()
    client.force_login(worker.user)
    a = client.post(reverse("next_task"), HTTP_ACCEPT="application/json").json()["assignment"]
    page = client.get(reverse("assignment_page", args=[a])).content.decode()
    assert "Highlighted" in page and "Amplified" in page and payload["class_name"] in page
    assert "Judge by the highlighted images" in page and "only when the heatmaps are unclear" in page
    assert page.count('class="solved"') == len(solved)
    token = assignment_token(Assignment.objects.get(pk=a))
    reply = client.post(reverse("assignment_page", args=[a]), {"token": token, "main": "background", "confidence": 3},
                        HTTP_ACCEPT="application/json")
    assert reply.status_code == 400 and "reason" in reply.json()["errors"]
    client.post(reverse("assignment_return", args=[a]), {"token": token})

    crowd_answers(study, make_worker)
    assert Answer.objects.filter(task__study=study, task__is_gold=True).exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.study_close(study=study)
        services.study_aggregate(study=study)
    study.refresh_from_db()
    assert study.jobs.get(name="outputs").state == "done", study.jobs.get(name="outputs").error
    results = {r.task.truth["main"]: r.label for r in study.results.filter(task__is_gold=False).select_related("task")}
    for truth, label in results.items():
        assert label == ("core" if truth == "main_object" else "spurious")

    outputs = {o.name: o for o in study.outputs.all()}
    assert {"feature_labels.csv", "feature_panels.json", "salient_dataset.zip", "core_spurious_accuracy.csv",
            "core_spurious_accuracy.png", "accuracy_drop.png", "core_spurious_per_class.csv",
            "feature_sensitivity.csv", "feature_sensitivity_robust.png", "class_core_accuracy_standard.png",
            "salient_summary.json"} <= set(outputs)
    files = output_files(study)
    labels = read_csv(files["feature_labels.csv"])
    assert len(labels) == 8 and not any(r["task_key"].startswith("gold-") for r in labels)
    archive = zipfile.ZipFile(io.BytesIO(files["salient_dataset.zip"]))
    index = list(csv.DictReader(io.StringIO(archive.read("index.csv").decode())))
    assert index and all(row["core_features"] or row["spurious_features"] for row in index)
    mask = np.asarray(Image.open(io.BytesIO(archive.read(index[0]["core_mask"] if index[0]["core_features"]
                                                         else index[0]["spurious_mask"]))))
    assert mask.dtype == np.uint8 and mask.shape == (32, 32) and mask.max() >= 200
    acc = read_csv(files["core_spurious_accuracy.csv"])
    assert {r["model"] for r in acc} == {"robust", "standard"}
    assert sorted({float(r["sigma"]) for r in acc}) == pytest.approx([0.05 * i for i in range(11)])
    labelled = {r["label"] for r in labels}
    # core accuracy exists where a class has a spurious feature, spurious accuracy where it has a core one
    assert {r["measure"] for r in acc} == {m for m, need in (("core", "spurious"), ("spurious", "core"))
                                          if need in labelled}
    for row in acc:
        assert float(row["accuracy"]) == pytest.approx(float(row["standard_accuracy"]) + float(row["drop"]))
        if float(row["sigma"]) == 0:
            assert float(row["drop"]) == 0
    sensitivity = read_csv(files["feature_sensitivity.csv"])
    assert {(int(r["class"]), int(r["feature"])) for r in sensitivity if r["model"] == "robust"} == {
        (int(r["class"]), int(r["feature"])) for r in labels if r["label"] in ("core", "spurious")}

    rclient = Client()
    rclient.force_login(researcher)
    page = rclient.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert "core_spurious_accuracy.png" in page and reverse("study_results", args=[study.pk]) in page
    page = rclient.get(reverse("study_results", args=[study.pk])).content.decode()
    for r in labels:
        item = re.search(rf'data-label="([a-z]+)" data-tie="(yes|no)" data-key="{r["task_key"]}"', page)
        assert item and item.group(1) == r["label"], r["task_key"]
    assert all(f'id="fp-{f}"' in page for f in ("core", "spurious", "ties"))
    assert "core_spurious_accuracy.png" in page and "feature_sensitivity_robust.png" in page
    check_findings_on_page_and_api(study, files, page, tmp_path)
    full = made_archive(rclient, study, django_capture_on_commit_callbacks)
    assert f"study{study.pk}/outputs/salient_dataset.zip" in full.namelist()


def check_findings_on_page_and_api(study, files, page, tmp_path):
    """Fig. 4 statistics, App. F reasons, App. L σ* and the reference layout: their numbers (tests/salient_checks.py),
    the results page showing them and the API listing and serving the files."""
    decided = check_statistics(files)
    labels = read_csv(files["feature_labels.csv"])
    check_reasons(files, sum(int(r["n_answers"]) for r in labels))
    matched = check_matched(files)
    assert check_reference_layout(files, tmp_path) > 0
    spurious = sum(r["label"] == "spurious" for r in decided)
    assert f'<span id="stat-spurious">{spurious}</span>' in page and 'id="fig4c"' in page
    assert page.count('class="fp-reasons"') == sum(int(r["n_answers"]) > 0 for r in labels)
    assert REASONS["main_object"] in page or REASONS["background"] in page  # the workers' own words per panel
    assert page.count("<tr data-class=") == len(matched)
    api = api_client(study.owner)
    listed = {o["name"]: o for o in api.get(f"/api/studies/{study.pk}/outputs").json()}
    new = {"spurious_histogram.csv", "spurious_by_rank.csv", "shared_spurious_matrix.csv", "reason_words.csv",
           "shared_spurious_features.csv", "worker_reasons.csv", "matched_perturbation.csv",
           "salient_imagenet_layout.zip"}
    assert new <= set(listed)
    for name in new:
        reply = api.get(listed[name]["url"])
        assert b"".join(reply.streaming_content) == files[name], name
    # the demo's feature-panel part unpacks the export; its snippet loads with the reference's reading code
    lines = salient_reference_export(study.pk, tmp_path / "demo")
    root = tmp_path / "demo" / "salient_imagenet"
    snippet = re.search(r"SalientImageNet\('([^']+)', '[^']+', (\d+), \[([\d, ]+)\]\)", lines[0])
    assert snippet and snippet.group(1) == str(root), lines
    loaded = ReferenceSalientImageNet(str(root), str(root), int(snippet.group(2)),
                                      [int(f) for f in snippet.group(3).split(",")])
    assert len(loaded) > 0 and loaded[0][0].shape == (3, 224, 224)
    assert f"Fig. 4: {sum(r['label'] == 'spurious' for r in decided)} spurious" in lines[1]
    assert sum(line.startswith("App. L") for line in lines) == sum(r["model"] == "robust" for r in matched)


def test_feature_panel_gold_copies_can_be_left_out(researcher, django_capture_on_commit_callbacks):
    study = make_salient_study(researcher, "feature_panel", "no-gold", django_capture_on_commit_callbacks,
                               live=False, gold_panels="none")
    assert study.tasks.count() == 8 and not study.tasks.filter(is_gold=True).exists()


def test_feature_panel_threshold_is_a_strict_majority_unless_set():
    from annotation.task_kinds import get_task_kind

    kind = get_task_kind("feature_panel")
    conf = kind.default_settings()
    assert conf["spurious_threshold"] is None
    assert [kind.aggregator({**conf, "workers_per_task": n}).threshold for n in (3, 4, 5, 7)] == [2, 3, 3, 4]
    assert kind.aggregator({**conf, "spurious_threshold": 2, "workers_per_task": 5}).threshold == 2


def test_class_examples_carry_no_planted_cue():
    from types import SimpleNamespace

    from analysis.salient.benchmark_inputs import example_indices

    split = SimpleNamespace(labels=np.array([0, 0, 0, 0, 0, 1, 1]), bias_kinds=np.array([0, -1, 1, -1, -1, 0, -1]))
    bench = SimpleNamespace(split=lambda name: split)
    assert example_indices(bench, 0).tolist() == [1, 3, 4]
    assert example_indices(bench, 1).tolist() == [5, 6]  # too few clean images: the class's first ones


def test_heatmap_validation_of_the_spurious_features(researcher, make_worker, django_capture_on_commit_callbacks,
                                                     benchmark_dir):
    first = make_salient_study(researcher, "feature_panel", "fp", django_capture_on_commit_callbacks)
    cached = sorted((benchmark_dir / "evidence").glob("*.npz"))
    everything = make_salient_study(researcher, "heatmap_validation", "hv-all", django_capture_on_commit_callbacks,
                                    live=False)
    assert sorted((benchmark_dir / "evidence").glob("*.npz")) == cached  # same inputs, evidence reused
    assert {t.key for t in everything.tasks.all()} == {t.key for t in first.tasks.filter(is_gold=False)}  # no labels

    with pytest.raises(ValueError, match="no labels yet"):
        make_salient_study(researcher, "heatmap_validation", "hv-early", django_capture_on_commit_callbacks,
                           labels_from="fp")
    crowd_answers(first, make_worker, accuracy=1.0)
    services.study_close(study=first)
    services.study_aggregate(study=first)
    spurious = {r.task.key for r in first.results.filter(label="spurious", task__is_gold=False).select_related("task")}
    assert spurious, "the tiny benchmark's planted cues gave no spurious feature"
    study = make_salient_study(researcher, "heatmap_validation", "hv", django_capture_on_commit_callbacks,
                               labels_from="fp")
    assert {t.key for t in study.tasks.all()} == spurious
    again = make_salient_study(researcher, "heatmap_validation", "hv-all-2", django_capture_on_commit_callbacks,
                               labels_from="fp", features="all", live=False)
    assert again.tasks.count() == 8

    task = study.tasks.first()
    assert len(task.payload["set_a"]) == len(task.payload["set_b"]) == 3
    assert all(item["image"] != item["heatmap"] for item in task.payload["set_a"] + task.payload["set_b"])
    worker = make_worker("validator")
    client = Client()
    client.force_login(worker.user)
    a = client.post(reverse("next_task"), HTTP_ACCEPT="application/json").json()["assignment"]
    page = client.get(reverse("assignment_page", args=[a])).content.decode()
    assert "set A image 1" in page and "set A heatmap 1" in page and "set B image 3" in page
    token = assignment_token(Assignment.objects.get(pk=a))
    reply = client.post(reverse("assignment_page", args=[a]), {"token": token, "answer": "same", "reason": ""},
                        HTTP_ACCEPT="application/json")
    assert reply.status_code == 400 and {"reason", "confidence"} <= set(reply.json()["errors"])
    client.post(reverse("assignment_return", args=[a]), {"token": token})

    crowd_answers(study, make_worker, accuracy=1.0)
    with django_capture_on_commit_callbacks(execute=True):
        services.study_close(study=study)
        services.study_aggregate(study=study)
    labels = {r.task.truth["answer"]: r.label for r in study.results.select_related("task")}
    assert all(truth == label for truth, label in labels.items())
    summary = json.loads(output_files(study)["validation.json"])["summary"]
    assert summary["features"] == len(spurious) and summary["truth_agreement_percent"] == 100.0
    assert summary["validated"] == sum(label == "same" for label in
                                       study.results.values_list("label", flat=True))
    rclient = Client()
    rclient.force_login(researcher)
    page = rclient.get(reverse("study_results", args=[study.pk])).content.decode()
    assert f'{summary["validated"]} ({summary["validated_percent"]} %)' in page
    assert all(f'data-key="{key}"' in page for key in spurious)


def test_heatmap_validation_names_a_missing_labels_study(researcher, django_capture_on_commit_callbacks):
    with pytest.raises(ValueError, match="no study named 'nope'"):
        make_salient_study(researcher, "heatmap_validation", "hv-x", django_capture_on_commit_callbacks,
                           labels_from="nope")


def test_bad_salient_settings_fail_the_job_with_a_clear_error(researcher, django_capture_on_commit_callbacks):
    study = services.study_create(owner=researcher, name="bad", kind="feature_panel",
                                  settings={**TINY, "classes": [42]})
    with pytest.raises(ValueError, match="class 42 does not exist"):
        with django_capture_on_commit_callbacks(execute=True):
            services.study_start_computing(study=study)
    study.refresh_from_db()
    assert study.state == Study.State.DRAFT and "class 42" in study.error and not study.tasks.exists()
