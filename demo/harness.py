"""The demo study, end to end: a researcher and a simulated crowd use the real HTTP views.

Steps: create the study from the form, compute its evidence (a Celery job), launch, let
simulated workers (by default as many as workers per task) answer every task, close, aggregate,
and download the exports.
"""
from __future__ import annotations

import ast
import csv
import io
import json
import secrets
import zipfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.test import Client

from analysis.crowd_sim import simulated_crowd
from annotation import selectors, services
from annotation.artifacts import artifact_read
from annotation.models import Assignment, Job, Study
from annotation.task_kinds import get_task_kind
from demo.http_client import ResearcherClient, SiteClient, WorkerClient

EXPORT_FILES = ("answers.csv", "answers.json", "labels.csv", "labels.json", "archive.zip")
RESEARCHER = "demo-researcher"


#: Clients signed in during this process, by (site, username, password): one sign-in per account and run.
_SIGNED_IN: dict[tuple[str, str, str], SiteClient] = {}
#: Simulated workers' (name, password) whose stored hash is this run's password.
_PASSWORD_SET: set[tuple[str, str]] = set()


def ensure_researcher(password: str) -> None:
    user = services.researcher_create(username=RESEARCHER, password=password)
    if not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])


def signed_in(client_class: type[SiteClient], base_url: str, name: str, password: str) -> SiteClient:
    """A client of ``name`` signed in over HTTP, reused for every later study of this run."""
    key = (base_url, name, password)
    if key not in _SIGNED_IN:
        client = client_class(base_url)
        client.login(name, password)
        _SIGNED_IN[key] = client
    return _SIGNED_IN[key]


def ensure_workers(names: list[str], password: str) -> None:
    """The simulated workers' accounts with this run's password. They come from the service, not the sign-up
    page, which lets one address sign up only a few a minute (``SALIENT_SIGNUP_RATE``); the password is hashed
    once for all of them (one PBKDF2 hash is a third of a second here)."""
    User = get_user_model()
    existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
    for name in names:
        if name not in existing:
            services.worker_signup(username=name, password=None)  # no hash per account: set below, once
    stale = [name for name in names if (name, password) not in _PASSWORD_SET]
    if stale:
        User.objects.filter(username__in=stale).update(password=make_password(password))
        _PASSWORD_SET.update((name, password) for name in stale)


def worker_session(base_url: str, name: str, password: str) -> WorkerClient:
    """A client of worker ``name`` holding a session made here, as Django's test client's ``force_login`` makes
    one, reused for every later study of this run. A sign-in over HTTP would check the password with PBKDF2 (a
    third of a second, 35 times for the largest crowd); the answers themselves still pass through the real views
    (next task, task page, submit) with this session's cookie."""
    key = (base_url, name, password)
    if key not in _SIGNED_IN:
        session = Client()
        session.force_login(get_user_model().objects.get(username=name))
        client = WorkerClient(base_url)
        client.http.cookies.set(django_settings.SESSION_COOKIE_NAME,
                                session.cookies[django_settings.SESSION_COOKIE_NAME].value)
        _SIGNED_IN[key] = client
    return _SIGNED_IN[key]


def answer_all(base_url: str, workers: int, accuracy: float, seed: int, password: str) -> int:
    """Let simulated workers take turns at "next task" until none is left; returns answers given."""
    crowd = simulated_crowd(workers, accuracy, seed)
    ensure_workers([f"demo-{sim.name}" for sim in crowd], password)
    clients = [(sim, worker_session(base_url, f"demo-{sim.name}", password), sim.rng()) for sim in crowd]
    given = 0
    active = list(clients)
    while active:
        for entry in list(active):
            sim, client, rng = entry
            assignment_id = client.next_assignment()
            if assignment_id is None:
                active.remove(entry)
                continue
            token = client.open_assignment(assignment_id)
            task = Assignment.objects.select_related("task__study").get(pk=assignment_id).task
            answer = get_task_kind(task.study.kind).simulate_answer(task, selectors.study_conf(study=task.study), rng,
                                                                    sim.accuracy)
            reply = client.submit(assignment_id, token, answer)
            if reply.status_code != 201:
                raise RuntimeError(f"{sim.name}'s answer was refused: {reply.status_code} {reply.text[:300]}")
            given += 1
    return given


def clear_demo_studies(rerun: list[str]) -> None:
    """Before a run: delete the demo researcher's earlier studies of the names about to run, and close any other
    of theirs still live (an interrupted run leaves one), whose tasks would otherwise go to this run's crowd."""
    Study.objects.filter(owner__username=RESEARCHER, name__in=rerun).delete()
    for study in Study.objects.filter(owner__username=RESEARCHER, state=Study.State.LIVE):
        services.study_close(study=study)


def run_demo_study(
    base_url: str, *, form: dict[str, Any], out_dir: Path, accuracy: float = 0.85, seed: int = 0,
    workers: int | None = None, password: str | None = None,
) -> dict[str, Any]:
    """Run one study end to end through ``base_url``; exports land in ``out_dir``.

    ``workers`` simulated workers answer (default: the study's workers per task); ``password`` becomes the
    demo researcher's and the workers' password (default: a random one). The summary's ``seconds`` splits
    the time into evidence, crowd and outputs (aggregation, output job and downloads).
    """
    password = password or secrets.token_urlsafe(12)
    if (base_url, RESEARCHER, password) not in _SIGNED_IN:
        ensure_researcher(password)
    clock = time.monotonic()
    researcher = signed_in(ResearcherClient, base_url, RESEARCHER, password)
    Study.objects.filter(owner__username=RESEARCHER, name=form["name"]).delete()
    study_id = researcher.create_study(form)
    researcher.action(study_id, "compute")
    researcher.wait_for_state(study_id, {"ready"})
    seconds = {"evidence": time.monotonic() - clock}
    clock = time.monotonic()
    researcher.action(study_id, "launch")
    workers = workers or int(form.get("workers_per_task", 5))
    given = answer_all(base_url, workers, accuracy, seed, password)
    seconds["crowd"] = time.monotonic() - clock
    clock = time.monotonic()
    progress = researcher.progress(study_id)
    researcher.action(study_id, "close")
    researcher.action(study_id, "aggregate")  # a job: with a broker it runs on a worker
    researcher.wait_for_state(study_id, {"aggregated"})
    while researcher.progress(study_id)["job"]["state"] in ("pending", "running"):  # the outputs job, if any
        time.sleep(0.5)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in EXPORT_FILES:
        path = out_dir / name
        path.write_bytes(researcher.export(study_id, name))
        paths[name] = path
    labels = json.loads(paths["labels.json"].read_text())
    study = Study.objects.get(pk=study_id)
    kind = get_task_kind(study.kind)
    truth = {t.pk: kind.expected_label(t) for t in study.tasks.filter(is_gold=False)}
    scored = [r for r in labels if truth.get(r["task"]) is not None]
    correct = float(np.mean([r["label"] == truth[r["task"]] for r in scored])) if scored else float("nan")
    for output in study.outputs.all():
        path = out_dir / "outputs" / output.name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(researcher.get(f"/studies/{study_id}/outputs/{output.name}").content)
        paths[f"outputs/{output.name}"] = path
    seconds["outputs"] = time.monotonic() - clock
    return {
        "study": study_id, "answers": given, "received": progress["received"], "wanted": progress["wanted"],
        "tasks": len(labels), "ties": sum(bool(r["tie"]) for r in labels), "label_accuracy": correct,
        "scored": len(scored), "files": paths, "seconds": seconds,
    }


def run_kind_job(base_url: str, *, study_id: int, name: str, values: dict[str, Any], out_dir: Path,
                 password: str, timeout: float = 1800.0) -> dict[str, Path]:
    """Run one of the study kind's jobs through its form (initial values under ``values``) and download its files."""

    researcher = ResearcherClient(base_url)
    researcher.login(RESEARCHER, password)
    study = Study.objects.get(pk=study_id)
    form = get_task_kind(study.kind).jobs[name].form(services.study_context(study))()
    job_id = researcher.start_job(study_id, name, {**{f: form[f].value() for f in form.fields}, **values})
    deadline = time.monotonic() + timeout
    while (job := Job.objects.get(pk=job_id)).state not in (Job.State.DONE, Job.State.FAILED):
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {name} still {job.state} after {timeout:.0f}s")
        time.sleep(0.5)
    if job.state == Job.State.FAILED:
        raise RuntimeError(f"job {name} failed: {job.error}")
    paths = {}
    for output in study.outputs.filter(stage=name):
        path = out_dir / "outputs" / output.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(researcher.get(f"/studies/{study_id}/outputs/{output.name}").content)
        paths[f"outputs/{output.name}"] = path
    return paths


def salient_bias_report(study_id: int) -> list[dict[str, Any]]:
    """Per planted bias: is a feature pointing at it among its class's top features, and its crowd label."""

    # deferred: loads scikit-image, torch
    from analysis.salient.benchmark_inputs import benchmark_inputs

    study = Study.objects.get(pk=study_id)
    conf = study.settings
    bench, _, _ = benchmark_inputs(django_settings.SALIENT_BENCHMARK_DIR, benchmark=conf.get("benchmark"),
                                   training=conf.get("training"), flavours=[conf.get("model", "robust")])
    rows = []
    for bias in bench.biases:
        tasks = [t for t in study.tasks.filter(is_gold=False).select_related("result")
                 if t.payload.get("cls") == bias.label]
        pointing = [t for t in tasks if (t.truth or {}).get("main") in ("separate_object", "background")]
        rows.append({
            "bias": bias.kind, "class": bias.class_name, "features_shown": len(tasks),
            "features_on_cue": [t.payload["feature"] for t in pointing],
            "ranks": [t.payload["rank"] for t in pointing],
            "crowd_labels": [getattr(getattr(t, "result", None), "label", "") for t in pointing],
        })
    return rows


def salient_reference_export(study_id: int, out_dir: Path) -> list[str]:
    """Unpack the feature-panel study's ``salient_imagenet_layout.zip`` under ``out_dir/salient_imagenet`` (the
    layout of the reference code's ``inspection_utils.SalientImageNet``) and say what it holds and how to load it;
    with it, the §4 / Fig. 4 counts and the App. L σ* pairs of the studied model."""
    study = Study.objects.get(pk=study_id)
    outputs = {o.name: o for o in study.outputs.filter(name__in=["salient_imagenet_layout.zip", "salient_findings.json",
                                                                  "salient_summary.json"]).select_related("artifact")}
    if "salient_imagenet_layout.zip" not in outputs:
        return ["no Salient dataset was built (no decided feature label)"]
    root = out_dir / "salient_imagenet"
    with zipfile.ZipFile(io.BytesIO(artifact_read(outputs["salient_imagenet_layout.zip"].artifact))) as archive:
        archive.extractall(root)
        images = sum(name.startswith("train/") for name in archive.namelist())
    wordnet = ast.literal_eval((root / "wordnet_dict.py").read_text())  # a dict literal the reference eval()s
    classes = {c: w for c, w in wordnet.items() if (root / w / "image_names_map.csv").exists()}
    first = min(classes)
    header = (root / classes[first] / "image_names_map.csv").read_text().splitlines()[0]
    features = ", ".join(next(csv.reader([header])))  # the column names, unquoted: the feature indices
    lines = [f"reference layout: {root} ({len(classes)} classes, {images} images); load with the reference code: "
             f"SalientImageNet({str(root)!r}, {str(root)!r}, {first}, [{features}])"]
    if "salient_findings.json" in outputs:
        counts = json.loads(artifact_read(outputs["salient_findings.json"].artifact))["counts"]
        lines.append(f"Fig. 4: {counts['spurious']} spurious / {counts['core']} core features; "
                     f"{counts['classes_with_spurious']} of {counts['classes']} classes have a spurious one")
    if "salient_summary.json" in outputs:
        summary = json.loads(artifact_read(outputs["salient_summary.json"].artifact))
        model = study.settings.get("model", "robust")
        for r in summary["models"].get(model, {}).get("matched", []):
            lines.append(f"App. L ({model}): {r['class_name']} {r['label']} feature {r['feature']}: drop "
                         f"{r['drop']:.2f} at σ 0.25 (perturbation {r['mean_perturbation']:.2f}), "
                         f"{r['drop_at_sigma_star']:.2f} at σ* {r['sigma_star']} "
                         f"(perturbation {r['mean_perturbation_at_sigma_star']:.2f})")
    return lines


def spray_report(study_id: int) -> list[str]:
    """Lines on what SpRAy found: the class ranking, each planted cue's rank and purest cluster, the crowd's labels."""

    study = Study.objects.get(pk=study_id)
    summary = study.outputs.filter(name="spray_summary.json").select_related("artifact").first()
    if summary is None:
        return ["no SpRAy summary was stored"]
    data = json.loads(artifact_read(summary.artifact))
    lines = ["ranking by tau: " + ", ".join(f"{r['name']} {r['tau']:.1f}" for r in data["ranking"])]
    for row in data["ranking"]:
        if row["planted_cue"]:
            lines.append(f"{row['planted_cue']} cue class {row['name']}: tau rank {row['rank']}, "
                         f"purest cluster {row['best_cue_purity']:.0%} cue images (k = {row['k_shown']})")
    lines += clustering_lines(data)
    labels = {r.task_id: r.label for r in study.results.all()}
    for task in study.tasks.order_by("id"):
        lines.append(f"{task.key:28s} {task.payload['size']:4d} images  truth {task.truth['focus']:15s} "
                     f"crowd {labels.get(task.pk) or '-'}")
    unhans = study.outputs.filter(name="unhans_table2.json").select_related("artifact").first()
    if unhans is not None:
        report = json.loads(artifact_read(unhans.artifact))
        lines.append(f"un-Hans Table 2 ({report['cluster']}; A = {', '.join(c['name'] for c in report['classes'])}; "
                     f"{report['train_images']} train images, {report['settings']['epochs']} epochs; "
                     f"validation {report['val_clean_images']} cue-free, {report['val_carrying_images']} "
                     f"carrying the cue; artifact IoU with the planted cue "
                     f"{'-' if report['artifact_iou'] is None else format(report['artifact_iou'], '.2f')}): "
                     + "; ".join(f"{r['model']} clean {r['clean_accuracy']:.3f} / cue-carrying "
                                 f"{'-' if r['carrying_accuracy'] is None else format(r['carrying_accuracy'], '.3f')}"
                                 f" / artifact added {r['artifact_accuracy']:.3f}" for r in report["table"]))
    return lines


def clustering_lines(summary: dict, min_size: int = 5) -> list[str]:
    """One line per planted-cue class: how each of CoRelAy's clusterings (k-means, agglomerative, DBSCAN, HDBSCAN on
    the same spectral embedding) splits it, and its purest cluster's share of cue images (clusters of at least
    ``min_size`` images; noise excluded)."""
    lines = []
    for entry in summary["classes"]:
        cue = entry.get("planted")
        if not cue or not entry.get("clusterings"):
            continue
        parts = []
        for method, found in entry["clusterings"].items():
            shares = [c["cue_share"].get(cue, 0.0) for c in found["clusters"]
                      if c["cluster"] != "noise" and c["size"] >= min_size]
            noise = f" + {found['noise']} noise" if found["noise"] else ""
            purest = f"purest {max(shares):.0%}" if shares else "no cluster of 5+"
            parts.append(f"{method} {found['n_clusters']} clusters{noise} ({purest})")
        lines.append(f"clusterings of {entry['name']} ({cue} cue): " + "; ".join(parts))
    return lines


def misclassification_report(study_id: int) -> list[str]:
    """Lines of Stock & Cisse's Table 1 (per model) and Table 2 (per condition), with their 95 % Wilson intervals."""
    from annotation.artifacts import artifact_read

    study = Study.objects.get(pk=study_id)
    stored = study.outputs.filter(name="misclassification_summary.json").select_related("artifact").first()
    if stored is None:
        return ["no misclassification summary was stored"]
    summary = json.loads(artifact_read(stored.artifact))
    lines = []
    for r in summary.get("rectified_error", []):
        lines.append(f"Table 1 {r['model']} ({r['split']} split): top-1 error {r['error_percent']} % "
                     f"[{r['error_ci_low_percent']}, {r['error_ci_high_percent']}] -> rectified "
                     f"{r['rectified_error_percent']} % [{r['rectified_error_ci_low_percent']}, "
                     f"{r['rectified_error_ci_high_percent']}]; {r['rectified_images']} of {r['judged']} judged "
                     f"mistakes rectified ({r['errors']} errors in {r['images']} images)")
    for r in summary.get("adversarial_table", []):
        if r["top1_error_percent"] is None:
            lines.append(f"Table 2 {r['condition']}: rectified share {r['rectified_share_percent']} % "
                         f"of {r['judged']} judged")
            continue
        lines.append(f"Table 2 {r['condition']}: accuracy {r['accuracy_before_percent']} -> "
                     f"{r['accuracy_after_percent']} % under the attack, top-1 error {r['top1_error_percent']} % -> "
                     f"rectified {r['rectified_error_percent']} % [{r['rectified_error_ci_low_percent']}, "
                     f"{r['rectified_error_ci_high_percent']}] ({r['rectified_images']} of {r['judged']} rectified)")
    return lines


def bias_discovery_report(study_id: int) -> list[str]:
    """Stock & Cisse §3.4: the attribute's yes share per selector and role (95 % Wilson), beside the planted cue."""
    study = Study.objects.get(pk=study_id)
    stored = study.outputs.filter(name="attribute_shares.json").select_related("artifact").first()
    if stored is None:
        return ["no attribute shares were stored"]
    shares = json.loads(artifact_read(stored.artifact))
    lines = [f"attribute {shares['question']!r}: {shares['decided']} of {shares['images']} images decided"]
    for r in shares["pooled"]:
        cue = f", planted cue {r['planted_cue_percent']:.1f} %" if "planted_cue_percent" in r else ""
        lines.append(f"{r['selector']} {r['role']}: yes {r['yes']}/{r['decided']} = {r['yes_share_percent']:.1f} % "
                     f"[{r['wilson_low_percent']:.1f}, {r['wilson_high_percent']:.1f}]{cue}")
    return lines


def reconstruction_report(study_id: int) -> list[str]:
    """Lines per model: clean test accuracy and best-10 SSIM (the paper's Fig. 6), and the crowd's review."""

    study = Study.objects.get(pk=study_id)
    files = {o.name: o for o in study.outputs.select_related("artifact")}
    if "reconstruction_summary.json" not in files:
        return ["no reconstruction summary was stored"]
    summary = json.loads(artifact_read(files["reconstruction_summary.json"].artifact))
    review = {}
    if "crowd_review.json" in files:
        review = {r["level"]: r for r in json.loads(artifact_read(files["crowd_review.json"].artifact))}
    lines = []
    for level in summary["levels"]:
        report = level["trigger_report"] or {}
        crowd = review.get(level["level"])
        clicks = "" if not crowd or not crowd["clicks"] else f", clicks on a trigger {crowd['clicks_in_trigger']:.0%}"
        lines.append(
            f"{level['title']:28s} test accuracy {level['test_accuracy']:.3f}"
            + (f" ({other:.3f} with the other class's trigger)"
               if (other := level.get("test_accuracy_other_trigger")) is not None else "")
            + f", best-{level['k']} SSIM "
            f"{level['best_k_mean']:.3f} (start {level['baseline_initial_best_k_mean']:.3f}, noise "
            f"{level['baseline_noise_best_k_mean']:.3f})"
            + (f"; trigger shows in {report['best_k_shown']:.0%} of the best" if report else "")
            + (f"; crowd: object reconstructed {crowd['crowd_yes']:.0%} (reference {crowd['reference_yes']:.0%})"
               f"{clicks}" if crowd else ""))
    for r in summary.get("table2", []):
        lines.append(f"Table 2 {r['dataset']}, {r['model']}: accuracy {r['test_accuracy']:.3f}, "
                     f"mean best-{r['k']} SSIM {r['mean_best_k_ssim']:.4f}")
    if "hyperparameter_search.json" in files:
        search = json.loads(artifact_read(files["hyperparameter_search.json"].artifact))
        best = search["best"]
        lines.append(f"hyper-parameter search ({len(search['trials'])} trials of {search['settings']['steps']} "
                     f"steps): best trial {best['trial']}, best-10 SSIM {best['best_k_mean']:.4f} at lr "
                     f"{best['lr']:.3g}, lambda_min {best['lambda_min']:.3f}, init {best['rec_init_scale']:.3g}, "
                     f"alpha {best['alpha']:.0f}")
    return lines
