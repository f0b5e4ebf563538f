"""The recovered-sample study (``reconstruction_review``): the evidence job trains the base model and the trigger
levels, measures clean test accuracy and best-10 SSIM (table + scatter), workers judge whether the main object
was reconstructed and may click a trigger, the outputs summarise both per model."""
import json

import pytest
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.models import Answer, Assignment
from annotation.task_kinds import get_task_kind
from annotation.tokens import assignment_token
from tests.study_helpers import aggregate, crowd_answers, output_files, read_csv, sign_in, study_from_form

pytestmark = pytest.mark.slow

FORM = {
    "name": "recon", "kind": "reconstruction_review", "workers_per_task": 5, "reward_cents": 0,
    "assignment_minutes": 30, "backend": "internal", "s-source": "fashion-mnist", "s-classes": "0,8",
    "s-variant": "positional", "s-per_side": 6, "s-size": 8, "s-hidden": 64, "s-trigger_share": 0.5,
    "s-steps": 60, "s-review_k": 2, "s-object_ssim": 0.3, "s-seed": 0,
}
LEVELS = ["base", "L1", "L2", "L3"]


@pytest.fixture
def recon_study(researcher_client, django_capture_on_commit_callbacks):
    return study_from_form(researcher_client, FORM, django_capture_on_commit_callbacks)


def test_levels_test_accuracy_ssim_table_and_review_tasks(recon_study, researcher_client, settings):
    files = output_files(recon_study)
    for level in LEVELS:
        assert files[f"pairs_{level}.png"][:4] == b"\x89PNG" and files[f"loss_{level}.png"][:4] == b"\x89PNG"
    summary = json.loads(files["reconstruction_summary.json"])
    assert [entry["level"] for entry in summary["levels"]] == LEVELS
    table = read_csv(files["accuracy_vs_ssim.csv"])
    assert [row["level"] for row in table] == LEVELS and files["accuracy_vs_ssim.png"][:4] == b"\x89PNG"
    for entry, row in zip(summary["levels"], table):
        # Clean test accuracy on Fashion-MNIST's test split: all 1,000 images of each of the two classes.
        assert entry["test_size"] == 2000 and int(row["test_size"]) == 2000
        assert 0.3 < entry["test_accuracy"] <= 1
        assert float(row["test_accuracy"]) == pytest.approx(entry["test_accuracy"])
        assert 0 < entry["best_k_mean"] <= 1 and float(row["best_k_mean"]) == pytest.approx(entry["best_k_mean"])
        assert entry["reconstruction"]["steps"] == 60
        assert (entry["trigger_report"] is None) == (entry["level"] == "base")
        # positional levels: the accuracy with the other side's trigger, in the summary and the table
        other = entry["test_accuracy_other_trigger"]
        assert (other is None) == (entry["level"] == "base")
        if other is None:
            assert row["test_accuracy_other_trigger"] == ""
        else:
            assert 0 <= other <= 1 and float(row["test_accuracy_other_trigger"]) == pytest.approx(other)
    assert [e["trigger_report"]["triggers"] for e in summary["levels"][1:]] == [2, 6, 10]
    tasks = list(recon_study.tasks.all())
    for level in LEVELS:
        for side in (-1, 1):
            mine = [t for t in tasks if t.payload["level"] == level and t.payload["side"] == side]
            assert 1 <= len(mine) <= 2 and len({t.payload["recon_index"] for t in mine}) == len(mine)
    for t in tasks:
        reconstructed = t.payload["ssim"] >= 0.3 and t.payload["ssim"] > t.payload["start_ssim"]
        assert t.truth["object"] == ("yes" if reconstructed else "no")
        assert len(t.payload["boxes"]) == {"base": 0, "L1": 2, "L2": 6, "L3": 10}[t.payload["level"]]
        if t.truth["trigger"] is not None:
            x, y = t.truth["trigger"]
            assert any(x0 <= x <= x1 and y0 <= y <= y1 for x0, y0, x1, y1 in t.payload["boxes"])
    page = researcher_client.get(reverse("study_results", args=[recon_study.pk])).content.decode()
    assert page.count('<tr data-level=') == 4 and "/outputs/accuracy_vs_ssim.png" in page
    assert f'{summary["levels"][1]["test_accuracy"]:.3f}' in page and "the paper&#x27;s §4.1" in page
    other = f'<td class="other-trigger">{summary["levels"][1]["test_accuracy_other_trigger"]:.3f}</td>'
    assert other in page and page.count('<td class="other-trigger">—</td>') == 1  # the base model has no trigger
    # A rerun of the evidence reuses the cached models and makes the same tasks.
    from annotation.selectors import study_conf
    from annotation.task_kinds.reconstruction_review import _run_config, cached_run

    again = cached_run(_run_config(study_conf(study=recon_study), "L1"), settings.SALIENT_BENCHMARK_DIR,
                       lambda *a: pytest.fail("recomputed"))
    assert again["test_accuracy"] == summary["levels"][1]["test_accuracy"]


def test_contrast_variant_trains_the_base_and_the_contrast_model(researcher_client, django_capture_on_commit_callbacks):
    study = study_from_form(researcher_client, {**FORM, "name": "contrast", "s-variant": "contrast"},
                            django_capture_on_commit_callbacks)
    files = output_files(study)
    assert [row["level"] for row in read_csv(files["accuracy_vs_ssim.csv"])] == ["base", "contrast"]
    assert {t.payload["level"] for t in study.tasks.all()} == {"base", "contrast"}
    assert all(t.payload["boxes"] == [] and t.truth["trigger"] is None for t in study.tasks.all())


def test_answers_object_yes_no_with_an_optional_trigger_click_and_the_outputs(
        recon_study, make_worker, django_capture_on_commit_callbacks):
    services.study_launch(study=recon_study)
    worker = make_worker("first")
    a = services.assignment_claim_next(worker=worker)
    a = Assignment.objects.select_related("task__study").get(pk=a.pk)
    client = Client()
    client.force_login(worker.user)
    url = reverse("assignment_page", args=[a.pk])
    for bad, field in (({"trigger": "0.1,0.1"}, "object"), ({"object": "maybe"}, "object"),
                       ({"object": "yes", "trigger": "1.5,0.2"}, "trigger"),
                       ({"object": "yes", "trigger": "a,b"}, "trigger"),
                       ({"object": "yes", "pattern": "yes"}, "pattern")):
        reply = client.post(url, {"token": assignment_token(a), **bad}, HTTP_ACCEPT="application/json")
        assert reply.status_code == 400 and field in reply.json()["errors"], (bad, reply.content)
    assert not Answer.objects.exists()
    reply = client.post(url, {"token": assignment_token(a), "object": "no", "trigger": ""},
                        HTTP_ACCEPT="application/json")
    assert reply.status_code == 201
    assert Answer.objects.get().payload == {"object": "no", "trigger": None}

    kind = get_task_kind("reconstruction_review")
    assert all(kind.expected_label(t) == t.truth["object"] for t in recon_study.tasks.all())
    crowd_answers(recon_study, make_worker, accuracy=1.0)
    files = aggregate(recon_study, django_capture_on_commit_callbacks)
    rows = read_csv(files["reconstruction_labels.csv"])
    assert len(rows) == recon_study.tasks.count()
    # A perfect crowd: the majority is the reference, clicks only on shown triggers, all on a box.
    assert all(r["label"] == r["reference"] for r in rows if int(r["answers"]) == 5)
    review = {r["level"]: r for r in read_csv(files["crowd_review.csv"])}
    assert list(review) == LEVELS
    tasks = list(recon_study.tasks.all())
    for level, row in review.items():
        mine = [t for t in tasks if t.payload["level"] == level]
        shown = sum(t.truth["trigger"] is not None for t in mine)
        assert float(row["trigger_shown"]) == pytest.approx(shown / len(mine))
        assert float(row["reference_yes"]) == pytest.approx(sum(t.truth["object"] == "yes" for t in mine) / len(mine))
        if shown:
            assert float(row["clicks_in_trigger"]) == 1.0 and float(row["found"]) == 1.0
        else:
            assert int(row["clicks"]) == 0
    assert review["base"]["clicks"] == "0" and files["crowd_review.png"][:4] == b"\x89PNG"


@pytest.mark.browser
def test_worker_answers_and_clicks_a_trigger_in_the_browser(recon_study, live_server, page, make_worker):
    services.study_launch(study=recon_study)
    make_worker("looker")
    sign_in(page, live_server.url, "looker")
    page.click("#next-task")
    page.wait_for_selector("text=Was the main object reconstructed?")
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    page.keyboard.press("1")  # yes
    box = page.locator(".point-target img").bounding_box()
    page.mouse.click(box["x"] + 0.1 * box["width"], box["y"] + 0.2 * box["height"])
    assert "10 % from the left, 20 % from the top" in page.inner_text("[aria-live=polite]")
    assert page.is_visible(".point-marker")
    page.click("#submit-answer")
    page.wait_for_selector("text=Answer saved")
    answer = Answer.objects.get(task__study=recon_study).payload
    x, y = answer["trigger"]
    assert answer["object"] == "yes" and x == pytest.approx(0.1, abs=0.02) and y == pytest.approx(0.2, abs=0.02)


def test_two_benchmark_classes_table2_and_the_search_job_from_the_form_and_the_api(
        researcher, researcher_client, django_capture_on_commit_callbacks):
    """Source 'dataset' on the built-in benchmark (grey, up to its own 32 px); Table 2 carries each model's test
    accuracy and best-10 SSIM; the hyper-parameter search runs from the results page's form and from the API,
    seeded (the same draws twice), its best trial the highest best-k SSIM."""
    from tests.conftest import TINY_BENCHMARK, TINY_TRAINING
    from tests.test_api import api_client

    form = {**FORM, "name": "bench recon", "s-source": "dataset", "s-dataset": "benchmark", "s-classes": "0,1",
            "s-variant": "contrast", "s-size": 12, "s-benchmark": json.dumps(TINY_BENCHMARK),
            "s-training": json.dumps(TINY_TRAINING), "s-resize": "resize"}
    too_big = researcher_client.post(reverse("study_create"), {**form, "s-source": "fashion-mnist", "s-size": 30})
    assert too_big.status_code == 400 and "Fashion-MNIST images are 28 px" in too_big.content.decode()
    study = study_from_form(researcher_client, form, django_capture_on_commit_callbacks)
    files = output_files(study)
    summary = json.loads(files["reconstruction_summary.json"])
    table2 = read_csv(files["table2.csv"])
    assert [r["level"] for r in table2] == ["base", "contrast"]
    for entry, row in zip(summary["levels"], table2):
        assert row["dataset"] == summary["dataset"] and row["dataset"].startswith("benchmark (")
        assert float(row["test_accuracy"]) == pytest.approx(entry["test_accuracy"], abs=1e-4)
        assert float(row["mean_best_k_ssim"]) == pytest.approx(entry["best_k_mean"], abs=1e-4)
        assert int(row["test_size"]) == 2 * 20  # the tiny benchmark's 20 test images per class
    page = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
    assert 'id="table2"' in page and f'{summary["levels"][0]["best_k_mean"]:.4f}' in page
    assert 'id="search-not-run"' in page and "hyperparameter_search-trials" in page

    url = reverse("study_job_start", args=[study.pk, "hyperparameter_search"])
    good = {"hyperparameter_search-trials": 3, "hyperparameter_search-steps": 20,
            "hyperparameter_search-level": "base", "hyperparameter_search-seed": 5}
    bad = researcher_client.post(url, {**good, "hyperparameter_search-level": "L3"}, HTTP_ACCEPT="application/json")
    assert bad.status_code == 400 and "level:" in bad.json()["error"]
    with django_capture_on_commit_callbacks(execute=True):
        assert researcher_client.post(url, good, HTTP_ACCEPT="application/json").status_code == 202
    search = json.loads(output_files(study)["hyperparameter_search.json"])
    rows = read_csv(output_files(study)["hyperparameter_search.csv"])
    assert len(rows) == 3 and [int(r["rank"]) for r in rows] == [1, 2, 3]
    scores = [float(r["best_k_mean"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and search["best"]["best_k_mean"] == pytest.approx(scores[0])
    from analysis.reconstruction.search import sample_trials

    draws = sample_trials(3, seed=5)
    for r in rows:
        assert float(r["lr"]) == pytest.approx(draws[int(r["trial"]) - 1]["lr"])
    assert search["test_accuracy"] == pytest.approx(summary["levels"][0]["test_accuracy"])  # the same base model
    page = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
    assert page.count("<tr data-trial=") == 3 and f'{search["best"]["best_k_mean"]:.4f}' in page

    from annotation.management.commands.demo import SEARCH
    from demo.harness import reconstruction_report

    assert SEARCH["trials"] <= 5 and SEARCH["steps"] <= 500  # the demo's search stays small
    lines = reconstruction_report(study.pk)  # the demo's lines: Table 2, then the search's best trial
    for r in table2:
        assert (f"Table 2 {r['dataset']}, {r['model']}: accuracy {float(r['test_accuracy']):.3f}, "
                f"mean best-10 SSIM {float(r['mean_best_k_ssim']):.4f}") in lines
    assert lines[-1].startswith(f"hyper-parameter search (3 trials of 20 steps): best trial {search['best']['trial']}, "
                                f"best-10 SSIM {scores[0]:.4f} at lr ")
    api = api_client(researcher)
    reply = api.post(f"/api/studies/{study.pk}/kind-jobs/hyperparameter_search", {"params": {"trials": 0}},
                     content_type="application/json")
    assert reply.status_code == 400 and reply.json()["field"] == "params.trials"
    with django_capture_on_commit_callbacks(execute=True):
        reply = api.post(f"/api/studies/{study.pk}/kind-jobs/hyperparameter_search",
                         {"params": {"trials": 3, "steps": 20, "seed": 5}}, content_type="application/json")
    assert reply.status_code == 202, reply.content
    again = read_csv(output_files(study)["hyperparameter_search.csv"])
    assert [(r["trial"], r["best_k_mean"]) for r in again] == [(r["trial"], r["best_k_mean"]) for r in rows]
