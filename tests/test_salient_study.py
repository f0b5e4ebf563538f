"""The Salient study end to end on a tiny benchmark: evidence job, feature panels and heatmap
validation through the views, threshold labels, the Salient dataset and core/spurious accuracy."""
import csv
import io
import zipfile

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from annotation import services
from annotation.models import Assignment, Study
from annotation.tokens import assignment_token
from tests.conftest import TINY_BENCHMARK, TINY_TRAINING
from tests.study_helpers import computed_study, crowd_answers

pytestmark = pytest.mark.slow

TINY = {"benchmark": TINY_BENCHMARK, "training": TINY_TRAINING, "k_features": 2, "k_images": 3, "pool": 10,
        "attack_steps": 5}


def make_salient_study(researcher, kind, name, capture, **overrides):
    return computed_study(researcher, kind, name, {**TINY, **overrides}, capture)


def test_feature_panel_study_end_to_end(researcher, make_worker, django_capture_on_commit_callbacks):
    study = make_salient_study(researcher, "feature_panel", "salient", django_capture_on_commit_callbacks)
    tasks = list(study.tasks.all())
    assert len(tasks) == 4 * 2  # classes x top features
    payload = tasks[0].payload
    assert len(payload["images"]) == len(payload["heatmaps"]) == len(payload["attacks"]) == 3
    assert len(payload["examples"]) == 3 and payload["class_name"]
    assert "planted bias" not in payload["class_description"]  # the answer is never shown
    assert {t.truth["main"] for t in tasks} <= {"main_object", "separate_object", "background"}

    # A worker sees the panel page; a missing reason is refused naming the field.
    worker = make_worker("panelist")
    client = Client()
    client.force_login(worker.user)
    a = client.post(reverse("next_task"), HTTP_ACCEPT="application/json").json()["assignment"]
    page = client.get(reverse("assignment_page", args=[a])).content.decode()
    assert "Highlighted" in page and "Amplified" in page and payload["class_name"] in page
    token = assignment_token(Assignment.objects.get(pk=a))
    reply = client.post(reverse("assignment_page", args=[a]), {"token": token, "main": "background", "confidence": 3},
                        HTTP_ACCEPT="application/json")
    assert reply.status_code == 400 and "reason" in reply.json()["errors"]
    client.post(reverse("assignment_return", args=[a]), {"token": token})

    crowd_answers(study, make_worker)
    with django_capture_on_commit_callbacks(execute=True):
        services.study_close(study=study)
        services.study_aggregate(study=study)
    study.refresh_from_db()
    assert study.jobs.get(name="outputs").state == "done", study.jobs.get(name="outputs").error
    results = {r.task.truth["main"]: r.label for r in study.results.select_related("task")}
    for truth, label in results.items():
        assert label == ("core" if truth == "main_object" else "spurious")

    outputs = {o.name: o for o in study.outputs.all()}
    assert {"feature_labels.csv", "salient_dataset.zip", "core_spurious_accuracy.csv",
            "core_spurious_accuracy.png"} <= set(outputs)
    rclient = Client()
    rclient.force_login(researcher)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(
        rclient.get(reverse("study_output", args=[study.pk, "salient_dataset.zip"])).streaming_content)))
    index = list(csv.DictReader(io.StringIO(archive.read("index.csv").decode())))
    assert index and all(row["core_features"] or row["spurious_features"] for row in index)
    mask = np.asarray(Image.open(io.BytesIO(archive.read(index[0]["core_mask"] if index[0]["core_features"]
                                                         else index[0]["spurious_mask"]))))
    assert mask.dtype == np.uint8 and mask.shape == (32, 32) and mask.max() >= 200
    acc = list(csv.DictReader(io.StringIO(b"".join(rclient.get(
        reverse("study_output", args=[study.pk, "core_spurious_accuracy.csv"])).streaming_content).decode())))
    assert {r["model"] for r in acc} == {"robust", "standard"}
    assert sorted({float(r["sigma"]) for r in acc}) == pytest.approx([0.05 * i for i in range(11)])
    for row in acc:
        if float(row["sigma"]) == 0:
            assert row["core_accuracy"] == row["spurious_accuracy"]
    page = rclient.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert "core_spurious_accuracy.png" in page
    full = zipfile.ZipFile(io.BytesIO(rclient.get(reverse("study_export", args=[study.pk, "archive.zip"])).content))
    assert f"study{study.pk}/outputs/salient_dataset.zip" in full.namelist()


def test_heatmap_validation_reuses_the_evidence(researcher, make_worker, django_capture_on_commit_callbacks,
                                                benchmark_dir):
    first = make_salient_study(researcher, "feature_panel", "fp", django_capture_on_commit_callbacks)
    cached = sorted((benchmark_dir / "evidence").glob("*.npz"))
    study = make_salient_study(researcher, "heatmap_validation", "hv", django_capture_on_commit_callbacks)
    assert sorted((benchmark_dir / "evidence").glob("*.npz")) == cached  # same inputs, evidence reused
    task = study.tasks.first()
    assert len(task.payload["set_a"]) == len(task.payload["set_b"]) == 3
    assert {t.key for t in study.tasks.all()} == {t.key for t in first.tasks.all()}
    services.study_close(study=first)
    crowd_answers(study, make_worker, accuracy=1.0)
    services.study_close(study=study)
    services.study_aggregate(study=study)
    labels = {r.task.truth["answer"]: r.label for r in study.results.select_related("task")}
    assert all(truth == label for truth, label in labels.items())


def test_bad_salient_settings_fail_the_job_with_a_clear_error(researcher, django_capture_on_commit_callbacks):
    study = services.study_create(owner=researcher, name="bad", kind="feature_panel",
                                  settings={**TINY, "classes": [42]})
    with pytest.raises(ValueError, match="class 42 does not exist"):
        with django_capture_on_commit_callbacks(execute=True):
            services.study_start_computing(study=study)
    study.refresh_from_db()
    assert study.state == Study.State.DRAFT and "class 42" in study.error and not study.tasks.exists()
