"""`manage.py demo` runs every study kind end to end through the HTTP views with a simulated crowd."""
import csv
import json
import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests.conftest import TINY_BENCHMARK, TINY_TRAINING

pytestmark = pytest.mark.slow


def test_demo_command_end_to_end(transactional_db, tmp_path, capsys):
    call_command("demo", out=tmp_path, accuracy=0.85, seed=1, benchmark=TINY_BENCHMARK, training=TINY_TRAINING,
                 salient={"k_features": 3, "attack_steps": 10},
                 reconstruction={"per_side": 4, "size": 8, "hidden": 32, "steps": 30, "review_k": 2},
                 password="demo-pass-1")
    out = capsys.readouterr().out
    assert "image_choice: 55 answers (55/55) on 11 tasks" in out  # 55 given: no earlier study's tasks
    folder = tmp_path / "image_choice"
    for name in ["answers.csv", "answers.json", "labels.csv", "labels.json", "archive.zip"]:
        assert (folder / name).stat().st_size > 0
    answers = json.loads((folder / "answers.json").read_text())
    assert len(answers) == 55
    assert len({(a["task"], a["worker"]) for a in answers}) == 55
    labels = json.loads((folder / "labels.json").read_text())
    from analysis.sample_images import SUBJECTS

    truth = {f"img-{name}": subject for name, subject in SUBJECTS.items()}
    agree = sum(row["label"] == truth[row["task_key"]] for row in labels)
    assert agree >= 9, labels  # 5 workers at 85% accuracy: majority vote recovers nearly every subject

    # The Salient study: 4 classes x 3 features, 5 answers each, labelled, with its outputs downloaded; each
    # panel also has a gold copy (the benchmark knows its answer), mixed in at the kind's gold rate.
    gold_answers = re.search(r"feature_panel: (\d+) answers \(60/60\) on 24 tasks", out)
    assert gold_answers and int(gold_answers.group(1)) > 60, out
    assert "heatmap_validation: 60 answers (60/60) on 12 tasks" in out
    for name in ["salient_dataset.zip", "core_spurious_accuracy.csv", "core_spurious_accuracy.png"]:
        assert (tmp_path / "feature_panel" / "outputs" / name).stat().st_size > 0
    panel_labels = json.loads((tmp_path / "feature_panel" / "labels.json").read_text())
    assert {row["label"] for row in panel_labels if not row["gold"]} <= {"core", "spurious"}
    assert len(re.findall(r"^  planted ", out, re.M)) == 3  # one line per planted bias

    # Prototypes/criticisms: 4 targets x 7 conditions; 35 workers (7 x 5) see each target once across conditions,
    # so every task gets its 5 answers and the label figure covers every task.
    assert "class_assignment: 140 answers (140/140) on 28 tasks" in out
    assert "label = expected on " in out.split("class_assignment: ")[1].split("\n")[0]
    table = (tmp_path / "class_assignment" / "outputs" / "accuracy_table.csv").read_text().splitlines()
    assert len(table) == 1 + 7 and (tmp_path / "class_assignment" / "outputs" / "accuracy.png").stat().st_size > 0

    # Bias discovery (§3.4): the attribute's yes share per selector and role, beside the planted cue.
    bias = out.split("bias_discovery: ")[1]
    share = r"^  (adv|mmd) (prototypes|criticisms): yes \d+/\d+ = [\d.]+ % \[[\d.]+, [\d.]+\], planted cue"
    assert "attribute 'Does the image show a marking" in bias and len(re.findall(share, bias, re.M)) == 4
    assert (tmp_path / "bias_discovery" / "outputs" / "attribute_shares.csv").stat().st_size > 0

    # Misclassification agreement (top-1): 6 mistakes per model judged by 5 workers, Table 1 per model.
    assert "misclassification: 60 answers (60/60) on 12 tasks" in out
    errors = (tmp_path / "misclassification" / "outputs" / "rectified_error.csv").read_text().splitlines()
    assert next(csv.reader(errors[:1]))[:6] == ["model", "variant", "split", "images", "errors", "judged"]
    assert len(errors) == 1 + 2
    table1 = re.findall(r"Table 1 \w+ \(flipped split\): top-1 error [\d.]+ % \[[\d.]+, [\d.]+\] -> rectified "
                        r"[\d.]+ % \[[\d.]+, [\d.]+\]; \d of 6 judged", out)
    assert len(table1) == 2, out  # the printed Table 1: one line per model, with its intervals
    assert (tmp_path / "misclassification" / "outputs" / "yes_histogram.png").stat().st_size > 0
    mis_labels = json.loads((tmp_path / "misclassification" / "labels.json").read_text())
    assert {row["label"] for row in mis_labels} <= {"rectified", "not_rectified"}

    # SpRAy: the class ranking and plots, the clusters of the top 3 classes reviewed by 5 workers each.
    assert "cluster_review: " in out and "ranking by tau: " in out and out.count(" cue class ") == 3
    # ... and CoRelAy's other clusterings of each planted-cue class (issue 32)
    assert len(re.findall(r"clusterings of .+ \(\w+ cue\): kmeans \d+ clusters .*; hdbscan \d+ clusters", out)) == 3
    spray = tmp_path / "cluster_review"
    ranking = (spray / "outputs" / "spray_ranking.csv").read_text().splitlines()
    assert len(ranking) == 1 + 4
    review_labels = json.loads((spray / "labels.json").read_text())
    assert review_labels and {row["label"] for row in review_labels} <= {"object", "separate_object", "background",
                                                                          "artifact", None}
    assert {len(json.loads((spray / "answers.json").read_text()))} == {5 * len(review_labels)}
    assert (spray / "outputs" / "cluster_labels.csv").stat().st_size > 0
    # ... and un-Hans (§3.3) once: Table 2 of the trained model and of the models fine-tuned on A and on B.
    assert out.count("un-Hans Table 2 (") == 1 and "B clean " in out
    table2 = (spray / "outputs" / "unhans_table2.csv").read_text().splitlines()
    assert len(table2) == 1 + 3 and (spray / "outputs" / "unhans_epoch2.png").stat().st_size > 0

    # Recovered samples: the base model and trigger levels L1-L3, each with clean test accuracy and best-10 SSIM,
    # reviewed by the crowd (main object reconstructed? where is a trigger?).
    recon = out.split("reconstruction_review: ")[1]
    assert "label = expected on " in recon.split("\n")[0]
    assert recon.count("test accuracy ") == 4 and "L3: 5 positions per class" in recon
    assert recon.count("with the other class's trigger)") == 3  # L1-L3; the base model has no trigger
    outputs = tmp_path / "reconstruction_review" / "outputs"
    table = (outputs / "accuracy_vs_ssim.csv").read_text().splitlines()
    assert next(csv.reader(table[:1]))[:4] == ["level", "title", "test_accuracy", "best_k_mean"] and len(table) == 1 + 4
    review = (outputs / "crowd_review.csv").read_text().splitlines()
    assert next(csv.reader(review[:1]))[:4] == ["level", "reviewed", "crowd_yes", "reference_yes"]
    assert len(review) == 1 + 4
    assert recon.count("Table 2 Fashion-MNIST") == 4 and "hyper-parameter search (3 trials of 200 steps)" in recon
    assert len((outputs / "hyperparameter_search.csv").read_text().splitlines()) == 1 + 3

    # Stage timings, peak memory, and a login that opens a dashboard listing every demo study.
    assert out.count(" wall ") == 1 + 1 + 8 + 1 and "peak RSS" in out  # header, benchmark, 8 studies, total
    assert "sign in as 'demo-researcher' with password 'demo-pass-1'" in out
    client = Client()
    assert client.login(username="demo-researcher", password="demo-pass-1")
    listing = client.get(reverse("study_list")).content.decode()
    assert listing.count(">Demo: ") == 8  # one link per demo study


def test_a_rerun_replaces_its_study_and_closes_one_an_interrupted_run_left_live(
        transactional_db, tmp_path, capsys, django_capture_on_commit_callbacks):
    from annotation import services
    from annotation.management.commands.demo import image_choice_form
    from annotation.models import Answer, Study
    from demo.harness import RESEARCHER

    owner = services.researcher_create(username=RESEARCHER, password="old-pass")

    def live_study(name):
        study = services.study_create(owner=owner, name=name, kind="image_choice", workers_per_task=5,
                                      settings={"images": ["astronaut", "chelsea"], "image_size": 48})
        with django_capture_on_commit_callbacks(execute=True):
            services.study_start_computing(study=study)
        study.refresh_from_db()
        services.study_launch(study=study)
        return study

    earlier, interrupted = live_study(image_choice_form()["name"]), live_study("Demo: prototypes and criticisms")
    call_command("demo", out=tmp_path, only=["image_choice"], password="demo-pass-2")
    out = capsys.readouterr().out
    assert "image_choice: 55 answers (55/55) on 11 tasks" in out  # none went to the other live study's tasks
    assert not Study.objects.filter(pk=earlier.pk).exists()
    interrupted.refresh_from_db()
    assert interrupted.state == "closed" and not Answer.objects.filter(task__study=interrupted).exists()
    assert "sign in as 'demo-researcher' with password 'demo-pass-2'" in out
