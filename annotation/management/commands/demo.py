"""``manage.py demo``: run every study kind end to end with a simulated crowd over real HTTP."""
from __future__ import annotations

import json
import resource
import secrets
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.test import override_settings

from analysis.reconstruction.bias import DEFAULT_PAIR
from analysis.sample_images import SUBJECTS
from annotation.management.progress import tqdm_progress
from demo.harness import (
    RESEARCHER,
    clear_demo_studies,
    bias_discovery_report,
    misclassification_report,
    reconstruction_report,
    run_demo_study,
    run_kind_job,
    salient_bias_report,
    salient_reference_export,
    spray_report,
)
from demo.live_server import serving
from demo.profile import QUICK

STUDY_DEFAULTS = {"workers_per_task": 5, "reward_cents": 0, "assignment_minutes": 30, "backend": "internal"}

#: The simulated crowd of a kind, as a multiple of workers per task: a class_assignment worker sees each
#: target under one of its 7 conditions, so every task gets its answers only from 7x as many workers.
CROWD_MULTIPLE = {"class_assignment": 7}
#: The demo's attribute question (§3.4): the simulated crowd answers it by the benchmark's planted cue.
BIAS_QUESTION = "Does the image show a marking that is not part of the garment?"
#: The demo's hyper-parameter search (Haim et al. 2022, App.): a few short trials on the base model.
SEARCH = {"trials": 3, "steps": 200}


def image_choice_form() -> dict:
    return {
        **STUDY_DEFAULTS, "name": "Demo: main subject of bundled images", "kind": "image_choice",
        "s-question": "What is the main subject of this image?",
        "s-options": "person:Person, animal:Animal, object:Object, texture:Texture or material",
        "s-images": list(SUBJECTS), "s-images_per_task": 1, "s-image_size": 256,
    }


def salient_form(kind: str, name: str, benchmark: dict, training: dict, overrides: dict) -> dict:
    form = {
        **STUDY_DEFAULTS, "name": name, "kind": kind,
        "s-dataset": "benchmark", "s-model": "robust", "s-eval_models": ["robust", "standard"], "s-classes": "",
        "s-k_features": 5, "s-k_images": 5, "s-pool": 65, "s-attack_steps": 100, "s-spurious_threshold": 3,
        "s-reason_min_length": 5, "s-benchmark": json.dumps(benchmark), "s-training": json.dumps(training),
    }
    return {**form, **{f"s-{k}": v for k, v in overrides.items()}}


def crowd_size(form: dict) -> int:
    """Simulated workers for a demo study so that every task gets its ``workers_per_task`` answers."""
    return CROWD_MULTIPLE.get(form["kind"], 1) * int(form["workers_per_task"])


def class_assignment_form(benchmark: dict, training: dict) -> dict:
    """Prototypes/criticisms study, small: one target per class, permissive time window (instant simulated crowd)."""
    return {
        **STUDY_DEFAULTS, "name": "Demo: prototypes and criticisms", "kind": "class_assignment",
        "s-dataset": "benchmark", "s-model": "standard", "s-n_classes": 6, "s-images_per_class": 6,
        "s-targets_per_class": 1, "s-pool_per_class": 24, "s-attack_steps": 10, "s-attack_eps": 0.001,
        "s-mmd_reg": 1.0, "s-min_answer_time": 0, "s-max_answer_time": 3600, "s-seed": 0,
        "s-benchmark": json.dumps(benchmark), "s-training": json.dumps(training),
    }


def bias_discovery_form(benchmark: dict, training: dict) -> dict:
    """Stock & Cisse §3.4 on the same selections (the features pass is reused): one worker asks of every image Adv
    and MMD-critic picked whether it shows a planted marking; the yes shares per selector and role."""
    return {**class_assignment_form(benchmark, training), "name": "Demo: bias discovery (§3.4)",
            "workers_per_task": 1, "s-attribute_question": BIAS_QUESTION}


def misclassification_form(benchmark: dict, training: dict, overrides: dict) -> dict:
    """Top-1 misclassification agreement on the flipped split (planted cues on other classes), both models."""
    return {
        **STUDY_DEFAULTS, "name": "Demo: misclassification agreement", "kind": "misclassification",
        "s-dataset": "benchmark", "s-variant": "top1", "s-models": ["standard", "robust"], "s-split": "flipped",
        "s-top_k": 5, "s-max_images": 6, "s-threshold": 4, "s-fgsm_step": 0.001, "s-fgsm_max_steps": 10,
        "s-lime_samples": 1000, "s-benchmark": json.dumps(benchmark), "s-training": json.dumps(training),
        **{f"s-{k}": v for k, v in overrides.items()},
    }


def cluster_review_form(benchmark: dict, training: dict, overrides: dict) -> dict:
    """SpRAy on the standard model's heatmaps of SpRAy's benchmark variant (the cues as a minority strategy);
    the crowd reviews the clusters of the top 3 classes by tau and, as a researcher who suspects them
    would, those of the three classes with a planted cue."""
    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.benchmark_variant import SPRAY_BENCHMARK

    return {
        **STUDY_DEFAULTS, "name": "Demo: SpRAy cluster review", "kind": "cluster_review",
        "s-dataset": "benchmark", "s-model": "standard", "s-classes": "", "s-per_class": 1000, "s-size": 32,
        "s-metric": "euclidean", "s-max_k": 30, "s-review_classes": 3, "s-review_also": "", "s-examples": 8,
        "s-min_cluster_size": 5, "s-reason_min_length": 5,
        "s-benchmark": json.dumps({**SPRAY_BENCHMARK, **benchmark}), "s-training": json.dumps(training),
        **{f"s-{k}": v for k, v in overrides.items()},
    }


def reconstruction_review_form(overrides: dict) -> dict:
    """The paper's protocol: the base model and trigger levels L1-L3, each with its clean test accuracy and
    best-10 SSIM (25 images per side at 16 px, width 1000, 1,000 steps: ~1.5 min a model on 2 cores)."""
    settings = {"source": "fashion-mnist", "classes": ",".join(map(str, DEFAULT_PAIR)), "variant": "positional",
                "per_side": 25, "size": 16, "hidden": 1000, "trigger_share": 1.0, "steps": 1000, "review_k": 5,
                "object_ssim": 0.4, "seed": 0, **overrides}
    return {**STUDY_DEFAULTS, "name": "Demo: recovered samples", "kind": "reconstruction_review",
            **{f"s-{k}": v for k, v in settings.items()}}


def with_profile(full: bool, overrides: dict[str, dict]) -> dict[str, dict]:
    """Each group of settings: the quick profile (unless ``full``) under the command line's overrides."""
    profile = {} if full else QUICK
    merged = {group: {**profile.get(group, {}), **overrides[group]} for group in overrides}
    quick, given = profile.get("training", {}), overrides["training"]
    merged["training"] = {flavour: {**quick.get(flavour, {}), **given.get(flavour, {})}
                          for flavour in sorted(set(quick) | set(given))}
    return merged


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


class Command(BaseCommand):
    help = "Run the demo studies end to end with a simulated crowd through the real HTTP views."

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, default=Path(settings.EXPORT_DIR) / "demo")
        parser.add_argument("--accuracy", type=float, default=0.85, help="simulated workers' accuracy")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--only", nargs="*", help="run only these kinds")
        parser.add_argument("--full", action="store_true",
                            help="today's full sizes (64 px benchmark, width-32 models; ~27 min on 2 cores) "
                                 "instead of the quick profile (~10 min)")
        parser.add_argument("--password", default="",
                            help=f"password of the demo researcher {RESEARCHER!r} (default: a random one, printed)")
        parser.add_argument("--benchmark", type=json.loads, default={},
                            help="benchmark overrides as JSON (e.g. a smaller benchmark for a quick look)")
        parser.add_argument("--training", type=json.loads, default={}, help="training overrides as JSON per model")
        parser.add_argument("--salient", type=json.loads, default={},
                            help='Salient study settings as JSON, e.g. {"k_features": 3, "attack_steps": 20}')
        parser.add_argument("--spray", type=json.loads, default={},
                            help='SpRAy study settings as JSON, e.g. {"per_class": 300}')
        parser.add_argument("--unhans", type=json.loads, default={},
                            help='SpRAy un-Hans job settings as JSON, e.g. {"epochs": 10, "train_per_class": 300}')
        parser.add_argument("--misclassification", type=json.loads, default={},
                            help='misclassification study settings as JSON, e.g. {"lime_samples": 300}')
        parser.add_argument("--reconstruction", type=json.loads, default={},
                            help='reconstruction study settings as JSON, e.g. {"per_side": 10, "steps": 200}')

    def handle(self, *args, out: Path, accuracy: float, seed: int, only, full: bool, password: str, **options):
        # deferred: loads scikit-image, torch
        from analysis.salient.benchmark_inputs import benchmark_inputs
        from workers.celery import run_jobs_in_process_without_a_broker

        run_jobs_in_process_without_a_broker()  # the embedded default: the demo's jobs run in this process
        started = time.monotonic()
        groups = with_profile(full, {g: options[g] for g in
                                     ("benchmark", "training", "salient", "spray", "unhans", "misclassification",
                                      "reconstruction")})
        benchmark, training = groups["benchmark"], groups["training"]
        studies = {
            "image_choice": image_choice_form(),
            "feature_panel": salient_form("feature_panel", "Demo: Salient feature panels", benchmark, training,
                                          groups["salient"]),
            "heatmap_validation": salient_form("heatmap_validation", "Demo: Salient heatmap validation",
                                               benchmark, training, groups["salient"]),
            "class_assignment": class_assignment_form(benchmark, training),
            "bias_discovery": bias_discovery_form(benchmark, training),
            "misclassification": misclassification_form(benchmark, training, groups["misclassification"]),
            "cluster_review": cluster_review_form(benchmark, training, groups["spray"]),
            "reconstruction_review": reconstruction_review_form(groups["reconstruction"]),
        }
        if only:
            studies = {k: v for k, v in studies.items() if k in only}
        self.stdout.write(f"demo profile: {'full' if full else 'quick (make demo FULL=1 for the full sizes)'}")
        timings = []
        if {"feature_panel", "heatmap_validation", "cluster_review"} & set(studies):
            start, cpu = time.monotonic(), time.process_time()
            self.stdout.write("built-in benchmark: generating (or reusing) it and training both models…")
            bench, _, _ = benchmark_inputs(Path(settings.SALIENT_BENCHMARK_DIR), benchmark=benchmark,
                                           training=training, flavours=("standard", "robust"),
                                           progress=tqdm_progress())
            if "cluster_review" in studies:
                studies["cluster_review"]["s-review_also"] = ",".join(
                    str(label) for label in sorted(bench.biased_labels().values()))
            timings.append(("benchmark + both models", time.monotonic() - start, time.process_time() - cpu, {}))
            self.stdout.write(f"  ready in {timings[-1][1]:.0f}s "
                              f"(cached under {settings.SALIENT_BENCHMARK_DIR})")
        password = password or secrets.token_urlsafe(12)
        clear_demo_studies([form["name"] for form in studies.values()])
        # The simulated crowd answers far faster than people: the per-worker answer limit is lifted for the run.
        with serving() as base_url, override_settings(SALIENT_ANSWER_RATE="1000000/s",
                                                      SALIENT_CROWD_ENTRY_RATE="1000000/s"):
            self.stdout.write(f"serving on {base_url}")
            for name, form in studies.items():
                start, cpu = time.monotonic(), time.process_time()
                summary = run_demo_study(base_url, form=form, out_dir=out / name, accuracy=accuracy, seed=seed,
                                         workers=crowd_size(form), password=password)
                if name == "feature_panel":  # the Salient dataset in the reference code's layout, unpacked
                    summary["reference_export"] = salient_reference_export(summary["study"], out / name)
                if name == "cluster_review":  # un-Hans (§3.3) once, on the cluster the crowd called an artifact
                    clock = time.monotonic()
                    summary["files"].update(run_kind_job(base_url, study_id=summary["study"], name="unhans",
                                                         values=groups["unhans"], out_dir=out / name,
                                                         password=password))
                    summary["seconds"]["unhans"] = time.monotonic() - clock
                if name == "reconstruction_review":  # the appendix's hyper-parameter search, a few short trials
                    clock = time.monotonic()
                    summary["files"].update(run_kind_job(base_url, study_id=summary["study"],
                                                         name="hyperparameter_search", values=SEARCH,
                                                         out_dir=out / name, password=password))
                    summary["seconds"]["search"] = time.monotonic() - clock
                timings.append((name, time.monotonic() - start, time.process_time() - cpu, summary["seconds"]))
                self.report_study(name, summary, timings[-1][1])
        self.stdout.write("\nstage timings: wall and CPU seconds (CPU = all threads of this process)")
        for name, seconds, cpu_seconds, parts in timings:
            detail = ", ".join(f"{part} {value:.0f}" for part, value in parts.items())
            self.stdout.write(f"  {name:26s} wall {seconds:7.1f}  cpu {cpu_seconds:7.1f}"
                              + (f"  (wall: {detail})" if detail else ""))
        self.stdout.write(f"  {'total':26s} wall {time.monotonic() - started:7.1f}  cpu {time.process_time():7.1f}"
                          f"  peak RSS {peak_rss_mb():.0f} MB")
        self.stdout.write(
            f"\nOpen the dashboard: `make serve`, then http://127.0.0.1:8000/ and sign in as {RESEARCHER!r} "
            f"with password {password!r} (every demo study is theirs; `manage.py demo --password …` sets your own)."
        )

    def report_study(self, name: str, summary: dict, seconds: float) -> None:
        accuracy_text = ("no ground truth exists for these tasks (simulated answers drawn at random)"
                         if summary["label_accuracy"] != summary["label_accuracy"]
                         else f"label = expected on {summary['label_accuracy']:.0%} of "
                              f"{summary['scored']} tasks with ground truth")
        self.stdout.write(self.style.SUCCESS(
            f"{name}: {summary['answers']} answers ({summary['received']}/{summary['wanted']}) on "
            f"{summary['tasks']} tasks, {summary['ties']} ties, {accuracy_text}, {seconds:.1f}s"
        ))
        for file, path in summary["files"].items():
            self.stdout.write(f"  {file:32s} {path}")
        reports = {"reconstruction_review": reconstruction_report, "cluster_review": spray_report,
                   "misclassification": misclassification_report, "bias_discovery": bias_discovery_report}
        if name in reports:
            for line in reports[name](summary["study"]):
                self.stdout.write(f"  {line}")
        if name == "feature_panel":
            for line in summary.get("reference_export", []):
                self.stdout.write(f"  {line}")
            for row in salient_bias_report(summary["study"]):
                self.stdout.write(
                    f"  planted {row['bias']:10s} ({row['class']}): features on the cue among the top "
                    f"{row['features_shown']}: {row['features_on_cue'] or 'none'} at ranks {row['ranks']}, "
                    f"crowd labels {row['crowd_labels']}"
                )
