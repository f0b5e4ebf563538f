"""The prototype/criticism study (class_assignment) on the tiny benchmark: selection, tasks, the
one-target-per-worker exclusion across conditions, HTTP end to end with the simulated crowd,
the time filter, Table 3 outputs and results page, MMD-critic's gamma setting and the cue shares (§3.4)."""
import csv
import datetime
import io
import json
import re

import pytest

from annotation import services
from annotation.models import Answer, Assignment
from annotation.task_kinds.class_assignment import class_assignment_outputs
from tests.conftest import TINY_BENCHMARK, TINY_TRAINING
from tests.study_helpers import computed_study, output_files, read_csv

pytestmark = pytest.mark.slow

TINY = {"benchmark": TINY_BENCHMARK, "training": TINY_TRAINING, "targets_per_class": 1, "pool_per_class": 16,
        "images_per_class": 4, "min_answer_time": 0, "max_answer_time": 3600}


def make_study(researcher, capture, name="protos", workers_per_task=2, **overrides):
    return computed_study(researcher, "class_assignment", name, {**TINY, **overrides}, capture,
                          workers_per_task=workers_per_task)


def test_tasks_and_exclusion_across_conditions(researcher, make_worker, django_capture_on_commit_callbacks):
    study = make_study(researcher, django_capture_on_commit_callbacks)
    tasks = list(study.tasks.order_by("id"))
    assert len(tasks) == 4 * 7  # 4 classes x 1 target x 7 conditions
    conditions = {t.payload["condition"] for t in tasks}
    assert conditions == {"adv-pc", "mmd-pc", "probs-pc", "adv-p", "mmd-p", "probs-p", "random-p"}
    p = tasks[0].payload
    assert len(p["groups"]) == 4 and all(len(g["images"]) == 4 for g in p["groups"])  # 4 classes in tiny
    assert tasks[0].truth["choice"] in {"1", "2", "3", "4"}  # the target's group position
    assert p["groups"][int(tasks[0].truth["choice"]) - 1]["cls"] == tasks[0].truth["class"]
    by_cond = {t.payload["condition"]: t for t in tasks if t.payload["target_index"] == p["target_index"]}
    pc, only = by_cond["adv-pc"].payload["groups"][0], by_cond["adv-p"].payload["groups"][0]
    assert pc["indices"][:2] == only["indices"][:2] and pc["indices"][2:] != only["indices"][2:]  # 2 P + 2 C
    assert [t.payload["condition"] for t in tasks[:7:]] != [t.payload["condition"] for t in tasks[7:14]]  # rotated

    # One worker gets one task per target, whatever the conditions, also after returning a task.
    worker = make_worker("once")
    first = services.assignment_claim_next(worker=worker)
    Assignment.objects.filter(pk=first.pk).update(state="returned")
    seen = [first.task.payload["target_index"]]
    while (a := services.assignment_claim_next(worker=worker)) is not None:
        seen.append(a.task.payload["target_index"])
        Assignment.objects.filter(pk=a.pk).update(state="returned")
    assert sorted(seen) == sorted({t.payload["target_index"] for t in tasks}) and len(seen) == 4
    # Another worker still gets every target.
    other = make_worker("other")
    a = services.assignment_claim_next(worker=other)
    assert a is not None and a.task.payload["target_index"] == seen[0]


def test_http_end_to_end_with_simulated_crowd(live_server, researcher, settings):
    from demo.harness import run_demo_study

    form = {"workers_per_task": 3, "reward_cents": 0, "assignment_minutes": 30, "backend": "internal",
            "name": "protos http", "kind": "class_assignment", "s-dataset": "benchmark", "s-model": "standard",
            "s-n_classes": 3, "s-images_per_class": 4, "s-targets_per_class": 1, "s-pool_per_class": 16,
            "s-attack_steps": 10, "s-attack_eps": 0.001, "s-mmd_reg": 1.0, "s-min_answer_time": 0,
            "s-max_answer_time": 3600, "s-seed": 0, "s-benchmark": json.dumps(TINY_BENCHMARK),
            "s-training": json.dumps(TINY_TRAINING)}
    out = settings.EXPORT_DIR / "protos"
    summary = run_demo_study(live_server.url, form=form, out_dir=out, accuracy=1.0, seed=2)
    # 3 workers, each target once across its 7 conditions: 3 answers per target, 4 targets.
    assert summary["answers"] == 12 and summary["wanted"] == 28 * 3
    from annotation.models import Task

    tasks = Task.objects.filter(study_id=summary["study"])
    assert {len(t.payload["groups"]) for t in tasks} == {3}  # 3 of the 4 classes: the class sets differ
    assert len({tuple(sorted(g["cls"] for g in t.payload["groups"])) for t in tasks}) > 1
    labels = json.loads((out / "labels.json").read_text())
    truth = {t.pk: t.truth["choice"] for t in tasks}
    answered = [r for r in labels if r["n_answers"]]
    assert len(answered) == 4 and all(r["label"] == truth[r["task"]] for r in answered)
    rows = list(csv.DictReader(io.StringIO((out / "outputs" / "accuracy_table.csv").read_text())))
    assert len(rows) == 7 and sum(int(r["n_valid"]) for r in rows) == 12
    for r in rows:  # perfect simulated workers
        if int(r["n_valid"]):
            assert float(r["accuracy"]) == 100.0 and float(r["standard_error"]) == 0.0
    assert (out / "outputs" / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    summary_json = json.loads((out / "outputs" / "accuracy_table.json").read_text())
    assert summary_json["answers"] == {"total": 12, "valid": 12, "too_fast": 0, "too_slow": 0, "no_time": 0}
    answers = json.loads((out / "answers.json").read_text())
    per_worker = {}
    for a in answers:
        per_worker.setdefault(a["worker"], []).append(a["task"])
    for worker, task_ids in per_worker.items():
        targets = [Task.objects.get(pk=t).payload["target_index"] for t in task_ids]
        assert len(targets) == len(set(targets)) == 4, worker

    # The results page: Table 3 with the valid answers per condition, the error-bar plot.
    from django.test import Client
    from django.urls import reverse

    from annotation.models import Study

    study = Study.objects.get(pk=summary["study"])
    client = Client()
    client.force_login(study.owner)
    page = client.get(reverse("study_results", args=[study.pk])).content.decode()
    assert "Table 3" in page and "accuracy.png" in page
    for r in rows:
        row = page.split(f'data-condition="{r["condition"]}"><td>')[1].split("</td>")[0]
        assert re.sub(r"<[^>]+>", "", row) == r["title"], row
        assert f'condition={r["condition"]}"' in row  # the row opens its own tasks in the grid (issue 28)
        assert f'<td>{r["n_correct"]}</td><td>{r["n_valid"]}</td>' in page

    # The paper's time filter (20 s .. 3 min) discards these instant simulated answers, counted.
    study.settings = {**study.settings, "min_answer_time": 20, "max_answer_time": 180}
    files = {f.name: f for f in class_assignment_outputs(services.study_context(study))}
    counts = json.loads(files["accuracy_table.json"].data)["answers"]
    assert counts == {"total": 12, "valid": 0, "too_fast": 12, "too_slow": 0, "no_time": 0}
    # ...and a slow answer is discarded as too slow.
    answer = Answer.objects.filter(task__study=study).first()
    Answer.objects.filter(pk=answer.pk).update(submitted_at=answer.shown_at + datetime.timedelta(minutes=4))
    files = {f.name: f for f in class_assignment_outputs(services.study_context(study))}
    counts = json.loads(files["accuracy_table.json"].data)["answers"]
    assert counts["too_slow"] == 1 and counts["too_fast"] == 11


@pytest.mark.browser
def test_assignment_page_in_a_browser_keys_choose_a_class(live_server, page, researcher, make_worker,
                                                          django_capture_on_commit_callbacks):
    from tests.study_helpers import sign_in

    study = make_study(researcher, django_capture_on_commit_callbacks, name="protos browser", workers_per_task=1)
    make_worker("assigner")
    sign_in(page, live_server.url, "assigner")
    page.click("#next-task")
    page.wait_for_selector("#target-image")
    groups = page.locator(".assignment-group")
    assert groups.count() == 4
    for i in range(4):
        assert groups.nth(i).locator("img").count() == 4
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    assert page.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)")
    assignment = Assignment.objects.get(worker__user__username="assigner")
    for key in ("4", "1", "3"):  # digits pick group 4, then 1, then 3
        page.keyboard.press(key)
        assert page.is_checked(f"input[name=choice][value='{key}']")
    page.focus("#submit-answer")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Answer saved")
    assert Answer.objects.get(task__study=study).payload == {"choice": "3"}
    assert assignment.task.payload["groups"][2]["cls"] in range(4)


def test_cue_shares_and_the_mmd_gamma_setting(researcher, django_capture_on_commit_callbacks):
    from annotation.task_kinds.class_assignment import ClassAssignmentSettingsForm

    form = ClassAssignmentSettingsForm(data={"mmd_gamma": "-1"})
    assert not form.is_valid() and "positive" in str(form.errors["mmd_gamma"])
    median = make_study(researcher, django_capture_on_commit_callbacks, name="median")
    paper = make_study(researcher, django_capture_on_commit_callbacks, name="paper", mmd_gamma=1e-5)
    assert median.settings["mmd_gamma"] is None and paper.settings["mmd_gamma"] == 1e-5

    def shown(study, selector):
        return {t.key: [g["indices"] for g in t.payload["groups"]] for t in study.tasks.all()
                if t.payload["selector"] == selector}

    assert shown(median, "adv") == shown(paper, "adv") and shown(median, "probs") == shown(paper, "probs")
    assert shown(median, "mmd") != shown(paper, "mmd")  # gamma reaches MMD-critic only

    rows = read_csv(output_files(median)["cue_share_table.csv"])  # stored with the evidence
    assert {(r["selector"], r["role"]) for r in rows} == {(s, role) for s in ("adv", "mmd", "probs")
                                                          for role in ("prototypes", "criticisms")} | {("random",
                                                                                                        "prototypes")}
    for r in rows:
        assert float(r["cue_share_percent"]) == pytest.approx(100 * int(r["cue_images"]) / int(r["images"]), abs=0.01)
    assert any(float(r["class_cue_percent"]) > 0 for r in rows)  # the tiny benchmark has biased classes


def test_selections_come_from_a_sharded_prototype_features_pass_equal_to_in_memory(
        researcher, settings, tmp_path, django_capture_on_commit_callbacks):
    """The pools' features, probabilities and flip steps are one streamed pass in shards; the selections
    equal the whole-pool in-memory computation, class by class."""
    import numpy as np
    import torch

    from analysis.prototypes.adversarial import bim_flip_steps
    from analysis.prototypes.selectors import SELECTORS, Selection, select_class, shown_images
    from analysis.salient.benchmark_inputs import benchmark_inputs
    from annotation.task_kinds.class_assignment import class_pools

    settings.SALIENT_EVIDENCE_SHARDS, settings.SALIENT_EVIDENCE_BATCH = 3, 8
    settings.ARTIFACT_DIR = tmp_path / "artifacts"  # this study's shards only
    study = make_study(researcher, django_capture_on_commit_callbacks, name="sharded")
    shards = sorted((settings.ARTIFACT_DIR / "named" / "shards" / "prototype_features").rglob("*.npz"))
    assert len(shards) == 3

    bench, handles, _ = benchmark_inputs(settings.SALIENT_BENCHMARK_DIR, benchmark=TINY_BENCHMARK,
                                         training=TINY_TRAINING, flavours=["standard"])
    handle, conf = handles["standard"], study.settings
    train = bench.split("train")
    expected = {}
    for cls, pool in class_pools(bench, conf).items():
        images, labels = train.tensors(pool)
        with torch.no_grad():
            features = handle.features(images).double().numpy()
            probs = torch.softmax(handle.logits(images).double(), 1)[:, cls].numpy()
        flips = bim_flip_steps(handle, images, labels, max_steps=conf["attack_steps"], eps=conf["attack_eps"])
        for selector in SELECTORS:
            sel = select_class(selector, k=conf["images_per_class"], seed=conf["seed"] * 1000 + cls, features=features,
                               probs=probs, flips=flips, mmd={"gamma": conf["mmd_gamma"], "reg": conf["mmd_reg"]})
            expected[cls, selector] = (pool[sel.prototypes].tolist(), pool[sel.criticisms].tolist())
    seen = {}
    for task in study.tasks.all():
        for group in task.payload["groups"]:
            seen.setdefault((group["cls"], task.payload["selector"], task.payload["shown"]), group["indices"])

    for (cls, selector, shown), indices in seen.items():
        prototypes, criticisms = expected[cls, selector]
        want = shown_images(Selection(np.asarray(prototypes), np.asarray(criticisms)), shown,
                            conf["images_per_class"])
        assert indices == [int(i) for i in want], (cls, selector, shown)


def test_attribute_question_shares_match_the_planted_cue_through_the_form(
        researcher, researcher_client, make_worker, django_capture_on_commit_callbacks):
    """§3.4 bias discovery on the benchmark, from the researcher's form: the simulated crowd answers the attribute
    by each image's planted cue, so the crowd's yes share per selector, role and class equals the cue share of the
    selections, computed independently by ``cue_share_table``."""
    from tests.study_helpers import aggregate, crowd_answers, study_from_form

    from annotation.management.commands.demo import bias_discovery_form
    from demo.harness import bias_discovery_report

    form = {**bias_discovery_form(TINY_BENCHMARK, TINY_TRAINING), "workers_per_task": 3, "name": "attribute",
            "s-n_classes": 3, "s-images_per_class": 4, "s-pool_per_class": 16,
            "s-attribute_question": "Does the image show a marking?"}
    bad = researcher_client.post("/studies/new/", {**form, "s-attribute_question": "??"})
    assert bad.status_code == 400 and "write the question in words" in bad.content.decode()
    study = study_from_form(researcher_client, form, django_capture_on_commit_callbacks)
    tasks = list(study.tasks.all())
    assert tasks and all(t.payload["attribute"] == "Does the image show a marking?" for t in tasks)
    assert len({t.payload["index"] for t in tasks}) == len(tasks)  # one task per distinct picked image
    services.study_launch(study=study)
    assert crowd_answers(study, make_worker, n=3, accuracy=1.0) == 3 * len(tasks)
    files = aggregate(study, django_capture_on_commit_callbacks)
    cues = {(r["class"], r["selector"], r["role"]): float(r["cue_share_percent"])
            for r in read_csv(files["cue_share_table.csv"]) if r["selector"] in ("adv", "mmd")}
    shares = read_csv(files["attribute_shares.csv"])
    assert {(r["class"], r["selector"], r["role"]) for r in shares} == set(cues)
    for r in shares:
        assert int(r["decided"]) == int(r["images"])
        assert float(r["yes_share_percent"]) == pytest.approx(cues[(r["class"], r["selector"], r["role"])], abs=0.01)
        assert float(r["planted_cue_percent"]) == pytest.approx(float(r["yes_share_percent"]), abs=0.01)
        assert float(r["wilson_low_percent"]) <= float(r["yes_share_percent"]) <= float(r["wilson_high_percent"])
    assert any(float(r["yes_share_percent"]) > 0 for r in shares)  # the tiny benchmark's cues are found
    pooled = json.loads(files["attribute_shares.json"])["pooled"]
    assert {(p["selector"], p["role"]) for p in pooled} == {(s, r) for s in ("adv", "mmd")
                                                           for r in ("prototypes", "criticisms")}
    page = researcher_client.get(f"/studies/{study.pk}/results/").content.decode()
    assert "Does the image show a marking?" in page and 'id="attribute-pooled"' in page
    assert 'data-selector="adv" data-role="prototypes"' in page
    lines = bias_discovery_report(study.pk)  # the demo's lines
    assert lines[0] == f"attribute 'Does the image show a marking?': {len(tasks)} of {len(tasks)} images decided"
    for p, line in zip(pooled, lines[1:]):
        assert line.startswith(f"{p['selector']} {p['role']}: yes {p['yes']}/{p['decided']} = "
                               f"{p['yes_share_percent']:.1f} % [{p['wilson_low_percent']:.1f}, ")
        assert line.endswith(f"planted cue {p['planted_cue_percent']:.1f} %")
    preview = researcher_client.get(f"/tasks/{tasks[0].pk}/preview/")
    assert preview.status_code == 200 and 'id="attribute-image"' in preview.content.decode()
