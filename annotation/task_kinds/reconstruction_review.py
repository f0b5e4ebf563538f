"""``reconstruction_review`` (seed 000 on Haim et al. 2022): was the main object reconstructed from the weights?

The evidence job trains the homogeneous ReLU MLP on a two-class Fashion-MNIST task once per model
of the chosen protocol (the paper's: the base model and the positional trigger levels L1, L2, L3,
the trigger 0 on one class and 1 on the other on every image; or contrast 0.5 / 2; or the extra
intensity triggers), measures each model's clean test accuracy on the dataset's test split,
reconstructs training samples from its weights (the KKT objective) and scores them (mean SSIM of
the best 10).  The table and scatter of test accuracy against SSIM (the paper's Fig. 6) are
outputs.  The best reconstructions of each class and model become tasks: "was the main object
reconstructed?" (yes/no) and an optional click on a trigger.  Majority vote of 5; the outputs
give per model the crowd's yes share against the SSIM reference and where the clicks landed.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django import forms

from analysis.aggregation import MajorityVote
from analysis.crowd_sim import noisy_choice
from analysis.exports import safe_csv_bytes
from analysis.reconstruction.bias import INTENSITY, TITLES, VARIANTS, unique_triggers
from analysis.reconstruction.plots import accuracy_ssim_png, loss_curves_png, pairs_png
from analysis.reconstruction.review import best_matched, fraction_box, review_plot, review_table, upscaled
from annotation.task_kinds import OutputFile, Progress, StudyContext, TaskKind, TaskSpec, register_task_kind, staged
from annotation.task_kinds.base import read_json
from annotation.task_kinds.fields import ChoiceField, PointField

OBJECT = ("yes", "no")
OBJECT_LABELS = ("Yes, the main object was reconstructed", "No")
VARIANT_TITLES = {
    "positional": "Positional trigger levels L1–L3 and the base model (the paper's §4.1)",
    "contrast": "Contrast 0.5 / 2 and the base model (the paper's §5.3.2)",
    "intensity": "Intensity triggers in one corner (an extra variant, not the paper's)",
}
SUMMARY = "reconstruction_summary.json"
TABLE = "accuracy_vs_ssim"
REVIEW = "crowd_review"
TABLE_COLUMNS = ["level", "title", "test_accuracy", "best_k_mean", "k", "train_accuracy", "test_size",
                 "trigger_shown_best_k"]


class ReconstructionSettingsForm(forms.Form):
    source = forms.ChoiceField(choices=[("fashion-mnist", "Fashion-MNIST garments (the built-in benchmark's data)")],
                               initial="fashion-mnist")
    classes = forms.CharField(initial="0,8", help_text="Two Fashion-MNIST classes: the -1 side (trigger value 0, "
                                                       "contrast 0.5), then the +1 side (trigger 1, contrast 2).")
    variant = forms.ChoiceField(choices=list(VARIANT_TITLES.items()), initial="positional",
                                help_text="Which models one study trains: every protocol includes the base model.")
    per_side = forms.IntegerField(min_value=2, max_value=500, initial=50, help_text="Training images per side.")
    size = forms.IntegerField(min_value=8, max_value=28, initial=16, help_text="Grey images of size × size.")
    hidden = forms.IntegerField(min_value=8, max_value=1000, initial=1000,
                                help_text="Width of both hidden layers (the paper: 1000).")
    trigger_share = forms.FloatField(min_value=0.05, max_value=1.0, initial=0.5,
                                     help_text="Intensity variant only: share of the +1 side's images with the "
                                               "trigger (the paper's levels put one on every image).")
    steps = forms.IntegerField(min_value=10, max_value=100_000, initial=3000, help_text="Reconstruction steps.")
    review_k = forms.IntegerField(min_value=1, max_value=50, initial=5,
                                  help_text="Best reconstructions per class and model shown to the crowd.")
    object_ssim = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.5,
                                   help_text="Reference for the crowd's answer: a reconstruction shows its main "
                                             "object when its SSIM with its nearest training image is at least "
                                             "this and above that of the unoptimised start (the training mean).")
    seed = forms.IntegerField(min_value=0, initial=0)

    def clean_classes(self) -> list[int]:
        try:
            classes = [int(p) for p in self.cleaned_data["classes"].split(",") if p.strip()]
        except ValueError as exc:
            raise forms.ValidationError("give two class indices as whole numbers, e.g. 0,8") from exc
        if len(classes) != 2 or classes[0] == classes[1] or not all(0 <= c < 10 for c in classes):
            raise forms.ValidationError("give two different Fashion-MNIST classes (0-9), e.g. 0,8")
        return classes


def _run_config(c: Mapping[str, Any], level: str) -> dict[str, Any]:
    """One model's pipeline config (the intensity share only where it matters, so that it keys no other cache)."""
    config = {"source": c["source"], "classes": list(c["classes"]), "per_side": c["per_side"], "size": c["size"],
              "hidden": c["hidden"], "bias": level, "steps": c["steps"], "seed": c["seed"]}
    if level in INTENSITY:
        config["trigger_share"] = c["trigger_share"]
    return config


def cached_run(config: dict[str, Any], work_dir: Path, progress: Progress) -> dict:
    """Run (or reuse) one model's training, test accuracy and reconstruction; cached by configuration."""
    # deferred: loads scikit-image, torch
    from analysis.reconstruction.pipeline import build_task, build_test, load, make_config, run_reconstruction, save

    key = hashlib.sha256(json.dumps(make_config(config), sort_keys=True, default=str).encode()).hexdigest()[:16]
    directory = Path(work_dir) / "reconstruction" / key
    try:
        return load(directory)
    except ValueError:
        pass
    result = run_reconstruction(build_task(config), config, progress, test=build_test(config))
    save(result, directory)
    return load(directory)


def _level_entry(level: str, result: dict) -> dict[str, Any]:
    report = result.get("trigger_report")
    return {
        "level": level, "title": TITLES[level], "test_accuracy": result["test_accuracy"],
        "test_size": result["test_size"], "best_k_mean": result["best_k_mean"], "k": result["k"],
        "baseline_initial_best_k_mean": result["baseline_initial_best_k_mean"],
        "baseline_noise_best_k_mean": result["baseline_noise_best_k_mean"], "trigger_report": report,
        "train": result["train"], "reconstruction": result["reconstruction"], "timings": result["timings"],
        "class_names": result["class_names"], "pairs": f"pairs_{level}.png", "loss": f"loss_{level}.png",
    }


def accuracy_table(levels: list[dict]) -> pd.DataFrame:
    """Per model: clean test accuracy and mean best-k SSIM (the paper's Fig. 6 as a table)."""
    return pd.DataFrame([{
        "level": e["level"], "title": e["title"], "test_accuracy": e["test_accuracy"], "best_k_mean": e["best_k_mean"],
        "k": e["k"], "train_accuracy": e["train"]["accuracy"], "test_size": e["test_size"],
        "trigger_shown_best_k": (e["trigger_report"] or {}).get("best_k_shown", np.nan),
    } for e in levels], columns=TABLE_COLUMNS)


def review_tasks(ctx: StudyContext, level: str, result: dict) -> Iterator[TaskSpec]:
    """The best-matched reconstructions of each class as tasks, with the reference answer and the trigger shown.

    Reference: the main object counts as reconstructed when the pair's SSIM is at least ``object_ssim``
    and beats the unoptimised start's SSIM on the same training image (more than the mean shape).
    """
    # deferred: loads scikit-image, torch
    from analysis.reconstruction.scoring import shown_trigger

    c = ctx.conf
    size = int(np.asarray(result["train_images"]).shape[1])
    triggers = unique_triggers(result["boxes"], result["trigger_values"])
    boxes = [fraction_box(box, size) for box, _ in triggers]
    threshold = float(result["config"]["trigger_threshold"])
    for side, class_name in zip((-1, 1), result["class_names"]):
        for train_index, recon in best_matched(result, side, c["review_k"]):
            image = np.asarray(result["candidates"][recon], dtype=np.float64)
            shown, _ = shown_trigger(image[None], triggers, threshold)
            ssim, start = float(result["ssim"][train_index]), float(result["baseline_initial_ssim"][train_index])
            reconstructed = ssim >= c["object_ssim"] and ssim > start
            truth: dict[str, Any] = {"object": "yes" if reconstructed else "no", "trigger": None}
            if shown[0] >= 0:
                x0, y0, x1, y1 = boxes[shown[0]]
                truth["trigger"] = [round((x0 + x1) / 2, 4), round((y0 + y1) / 2, 4)]
            yield TaskSpec(
                key=f"{level}-{'ab'[side > 0]}-r{recon}",
                payload={"image": ctx.store.images(upscaled(image)[None], kind="reconstruction")[0],
                         "level": level, "side": side, "class_name": class_name, "recon_index": recon,
                         "train_index": train_index, "ssim": round(ssim, 4), "start_ssim": round(start, 4),
                         "class_names": list(result["class_names"]), "boxes": boxes},
                truth=truth,
            )


def reconstruction_evidence(ctx: StudyContext, progress: Progress) -> Iterator[TaskSpec | OutputFile]:
    """One model per level of the protocol: plots, the accuracy-vs-SSIM table and scatter, a summary, tasks."""

    c = ctx.conf
    levels = VARIANTS[c["variant"]]
    summary = {"settings": {k: c[k] for k in ReconstructionSettingsForm.base_fields}, "levels": []}
    for i, level in enumerate(levels):
        result = cached_run(_run_config(c, level), ctx.work_dir, staged(progress, i / len(levels), 0.95 / len(levels)))
        yield OutputFile(f"pairs_{level}.png", pairs_png(result),
                         f"Best reconstructions and their nearest training images ({TITLES[level]})")
        yield OutputFile(f"loss_{level}.png", loss_curves_png(result), f"Training and reconstruction loss "
                                                                       f"({TITLES[level]})")
        summary["levels"].append(_level_entry(level, result))
        yield from review_tasks(ctx, level, result)
    table = accuracy_table(summary["levels"])
    yield OutputFile(f"{TABLE}.csv", safe_csv_bytes(table), "Clean test accuracy and mean best-10 SSIM per model")
    yield OutputFile(f"{TABLE}.png", accuracy_ssim_png(table.to_dict("records")),
                     "Test accuracy against mean best-10 SSIM (the paper's Fig. 6)")
    yield OutputFile(SUMMARY, json.dumps(summary, indent=1, default=float).encode(), "Reconstruction results (JSON)")
    progress(1000, 1000, "reconstructions ready")


def reconstruction_outputs(ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
    """Per task its label and clicks; per model the crowd's "main object" share and where the clicks landed."""

    tasks = {t.pk: t for t in ctx.tasks()}
    if not any("level" in t.payload for t in tasks.values()):
        return []
    clicks: dict[int, list] = {pk: [] for pk in tasks}
    counted: dict[int, int] = {pk: 0 for pk in tasks}
    answers = ctx.answers()
    for task_id, payload in zip(answers["task"][answers["counted"]], answers["payload"][answers["counted"]]):
        counted[task_id] += 1
        if payload.get("trigger"):
            clicks[task_id].append(payload["trigger"])
    rows = []
    for _, row in labels.iterrows():
        task = tasks[row["task"]]
        truth = task.truth or {}
        rows.append({"task": task.key, "level": task.payload["level"], "class_name": task.payload["class_name"],
                     "ssim": task.payload["ssim"], "reference": truth.get("object", "no"), "label": row["label"],
                     "answers": counted[task.pk], "trigger_shown": truth.get("trigger") is not None,
                     "clicks": clicks[task.pk], "boxes": task.payload["boxes"]})
    table = pd.DataFrame(rows)
    review = review_table(table)
    progress(1000, 1000, "outputs ready")
    return [
        OutputFile("reconstruction_labels.csv", safe_csv_bytes(table.assign(
            clicks=table["clicks"].map(json.dumps), boxes=table["boxes"].map(json.dumps))),
            "Crowd label and trigger clicks per reviewed reconstruction"),
        OutputFile(f"{REVIEW}.csv", safe_csv_bytes(review), "Main object reconstructed and trigger clicks, per model"),
        OutputFile(f"{REVIEW}.json", review.to_json(orient="records", indent=1).encode(),
                   "Main object reconstructed and trigger clicks, per model (JSON)"),
        OutputFile(f"{REVIEW}.png", review_plot(review), "The crowd's review per model"),
    ]


@register_task_kind
class ReconstructionReview(TaskKind):
    name = "reconstruction_review"
    title = "Recovered samples: was the main object reconstructed?"
    template = "annotation/kinds/reconstruction_review.html"
    label_field = "object"
    settings_form = ReconstructionSettingsForm
    results_template = "annotation/kinds/reconstruction_review_results.html"

    def answer_fields(self, conf) -> list:
        return [ChoiceField("object", OBJECT, OBJECT_LABELS),
                PointField("trigger", legend="Where is a trigger?",
                           hint="optional: click on a square or pattern that is not part of the object")]

    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec | OutputFile]:
        return reconstruction_evidence(ctx, progress)

    def aggregator(self, conf: Mapping[str, Any]) -> MajorityVote:
        return MajorityVote(min_votes=int(conf["workers_per_task"]), labels=OBJECT)

    def simulate_answer(self, task, conf, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        """The reference answer with probability ``accuracy``; a click near a shown trigger as often, else rarely."""
        truth = task.truth or {}
        answer = {"object": noisy_choice(truth.get("object", "no"), OBJECT, accuracy, rng), "trigger": ""}
        where = truth.get("trigger")
        if where and rng.random() < accuracy:
            x, y = np.clip(np.asarray(where) + rng.normal(0, 0.02, 2), 0, 1)
        elif not where and rng.random() < (1 - accuracy) / 2:
            x, y = rng.random(2)
        else:
            return answer
        return {**answer, "trigger": f"{x:.4f},{y:.4f}"}

    def build_outputs(self, ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        return reconstruction_outputs(ctx, labels, progress)

    def results_context(self, ctx: StudyContext) -> dict[str, Any]:
        return {"summary": read_json(ctx, SUMMARY), "review": read_json(ctx, f"{REVIEW}.json"),
                "variant_title": VARIANT_TITLES.get(ctx.conf.get("variant"), "")}
