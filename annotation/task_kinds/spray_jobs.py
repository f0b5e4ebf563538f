"""SpRAy's artifact of a reviewed cluster and what uses it: the artifact tests and the two un-Hans jobs.

A cluster task's members are its images per split (``indices`` from the training split and, with a
joint train + validation embedding, ``val_indices``). The artifact is isolated from them as the
region of their mean relevance (:func:`analysis.spray.artifacts.artifact_mask`) with its median
colour there. Which images *carry* it: on the built-in benchmark, the images with the class's planted
cue; elsewhere, the cluster's own images.

The ``unhans`` job is Anders et al. §3.3: fine-tune the trained model on subset A (the class and four
others, at random as the paper or the most confused with it) and on subset B (A with the artifact
pasted onto every training image that lacks it), and report Table 2 and the heatmaps of a fixed
sample over the epochs. The
``unhans_drop`` job is the blunter alternative: retrain without the cluster's training images.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from django import forms

from analysis.exports import safe_csv_bytes
from annotation.task_kinds.base import KindJob, OutputFile, Progress, StudyContext, TaskRecord, staged
from annotation.task_kinds.benchmark import has_truth, model_inputs, num_classes

if TYPE_CHECKING:  # torch is imported where it runs: importing the app (every web process) stays light
    import torch

#: The benchmark's validation images are its ``test`` split.
VAL = "test"


def spray_inputs(ctx: StudyContext, progress: Progress, with_checkpoint: bool = False):
    """(benchmark, model handle[, checkpoint path]) of the study."""
    model = ctx.conf["model"]
    bench, handles, paths = model_inputs(ctx, [model], progress)
    return (bench, handles[model], paths[model]) if with_checkpoint else (bench, handles[model])


def task_members(payload: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A cluster task's images per split: ``{"train": indices, "test": indices}``."""
    return {"train": np.asarray(payload.get("indices", []), dtype=np.int64),
            VAL: np.asarray(payload.get("val_indices", []), dtype=np.int64)}


def member_tensors(bench, members: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """The members' images (float, [0, 1]) and labels, split by split."""
    # deferred: loads torch
    import torch

    parts = [bench.split(split).tensors(idx) for split, idx in members.items() if len(idx)]
    if not parts:
        raise ValueError("the cluster has no images")
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def planted_cue(bench, cls: int) -> str | None:
    """The cue planted on class ``cls`` of the built-in benchmark (None elsewhere)."""
    if not has_truth(bench):
        return None
    return next((b.kind for b in bench.biases if b.label == cls), None)


def carriers(bench, cls: int, split: str, members: Mapping[str, np.ndarray]) -> np.ndarray:
    """Which images of ``split`` carry the artifact: the planted cue of ``cls``, else the cluster's images."""
    # deferred: loads scikit-image, torch
    from analysis.datasets.benchmark import BIAS_KINDS

    data = bench.split(split)
    kind = planted_cue(bench, cls)
    if kind is not None:
        return np.asarray(data.bias_kinds) == BIAS_KINDS.index(kind)
    flags = np.zeros(len(data), bool)
    flags[members.get(split, np.zeros(0, np.int64))] = True
    return flags


def planted_mask(bench, cls: int, split: str = "train") -> np.ndarray | None:
    """Where the planted cue of ``cls`` sits: the pixels set in most of its carriers' cue masks (None elsewhere)."""
    kind = planted_cue(bench, cls)
    if kind is None:
        return None
    data = bench.split(split)
    own = np.flatnonzero((np.asarray(data.labels) == cls) & carriers(bench, cls, split, {}))
    return data.cue_mask(own) if len(own) else None


def isolate_artifact(bench, handle, members: Mapping[str, np.ndarray]) -> tuple[np.ndarray, torch.Tensor]:
    """(mask, patch) of the artifact the cluster's heatmaps agree on."""
    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.artifacts import artifact_mask, artifact_patch

    # deferred: loads scikit-learn, scipy, torch, zennit (torch)
    from analysis.spray.lrp import relevance

    images, labels = member_tensors(bench, members)
    mask = artifact_mask(relevance(handle, images, labels).sum(dim=1).numpy())
    return mask, artifact_patch(images, mask)


def removal_set(bench, cls: int, members: Mapping[str, np.ndarray], max_images: int = 500,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, str]:
    """(images, labels, affected, description) for :func:`~analysis.spray.artifacts.artifact_tests`.

    All validation images, never training images (Anders et al. §3.2, Fig. 8). The paste test uses
    up to ``max_images`` of the other classes' validation images drawn at random (seeded, from all of
    them, not the first in folder order). The removal test inpaints the affected images only (Table
    4): on the benchmark the class's validation images with its planted cue; elsewhere the validation
    images that fall into the cluster in the joint train + validation embedding (``embed_split``
    ``train+val``): without them there is no removal test. Only the images the tests use are read.
    """
    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.artifacts import sample_indices

    val = bench.split(VAL)
    labels = np.asarray(val.labels)
    others = sample_indices(np.flatnonzero(labels != cls), max_images, seed)
    kind = planted_cue(bench, cls)
    if kind is not None:
        own, described = np.flatnonzero((labels == cls) & carriers(bench, cls, VAL, members)), \
            f"validation images with the {kind} cue"
    else:
        in_cluster = np.asarray(members.get(VAL, np.zeros(0, np.int64)), dtype=np.int64)
        own = in_cluster[labels[in_cluster] == cls]
        described = ("the cluster's validation images (joint embedding, Fig. 8)" if len(own) else
                     "none: no validation image fell into the cluster (embed train+val to test removal)")
    own = sample_indices(own, max_images, seed + 1)
    chosen = np.union1d(others, own)
    images, chosen_labels = val.tensors(chosen)
    return images, chosen_labels, np.isin(chosen, own), described


def artifact_test_rows(bench, handle, cls: int, members: Mapping[str, np.ndarray]) -> list[dict]:
    """One row per test (paste, remove) of the cluster's artifact, Δ rank signed positive = toward ``cls``."""
    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.artifacts import artifact_tests

    mask, patch = isolate_artifact(bench, handle, members)
    images, labels, affected, described = removal_set(bench, cls, members)
    tests = artifact_tests(handle, images, labels, cls, mask, patch, affected=affected)
    return [{"test": test, "affected": described if test == "remove" else "other classes' validation images "
                                                                          "(drawn at random)",
             "mask_pixels": int(mask.sum()), **(effect or {"n": 0})} for test, effect in tests.items()]


def _cluster_task(ctx: StudyContext, key: str) -> TaskRecord:
    task = next((t for t in ctx.tasks() if t.key == key), None)
    if task is None or "indices" not in task.payload:
        raise ValueError(f"study {ctx.name!r} has no reviewed cluster {key!r}")
    return task


def _cluster_choices(ctx: StudyContext) -> tuple[list[tuple[str, str]], str | None]:
    """The reviewed clusters as form choices, and the first one the crowd called an artifact."""
    tasks = sorted((t for t in ctx.tasks() if not t.is_gold), key=lambda t: t.pk)
    labels = ctx.labels()
    choices = [(t.key, f"{t.payload.get('class_name', '')} · cluster {t.payload.get('cluster')} "
                       f"({t.payload.get('size')} images){' · crowd: ' + labels[t.pk] if labels.get(t.pk) else ''}")
               for t in tasks]
    initial = next((t.key for t in tasks if labels.get(t.pk) == "artifact"), choices[0][0] if choices else None)
    return choices, initial


# -- un-Hans as Anders et al. §3.3 ------------------------------------------------------------------
def unhans_form(ctx: StudyContext) -> type[forms.Form]:
    """The cluster whose artifact is unlearned, subset A's size and the fine-tuning settings (CPU-sized)."""
    choices, initial = _cluster_choices(ctx)
    classes = max(num_classes(ctx.conf), 2)

    class UnhansForm(forms.Form):
        cluster = forms.ChoiceField(choices=choices, initial=initial,
                                    help_text="Its artifact is isolated and pasted onto subset B's training images.")
        n_others = forms.IntegerField(min_value=1, max_value=classes - 1, initial=min(4, classes - 1),
                                      help_text="Subset A: the cluster's class and this many others (paper: 4).")
        others = forms.ChoiceField(choices=[("random", "chosen at random (the paper)"),
                                            ("confusion", "the classes most confused with it (validation)")],
                                   initial="random", help_text="How subset A's other classes are chosen.")
        train_per_class = forms.IntegerField(min_value=5, max_value=6000, initial=200,
                                             help_text="Training images per class of A (paper: 1,300).")
        epochs = forms.IntegerField(min_value=1, max_value=50, initial=3,
                                    help_text="Fine-tuning epochs of both models (paper: 10; heatmaps after "
                                              "epochs 1, 5 and 10, or 1, 5 and the last of a shorter run).")
        lr = forms.FloatField(min_value=1e-5, max_value=1.0, initial=0.01, help_text="SGD learning rate.")
        seed = forms.IntegerField(min_value=0, initial=0)

    return UnhansForm


def run_unhans(ctx: StudyContext, params: Mapping[str, Any], progress: Progress) -> list[OutputFile]:
    """Fine-tune on subsets A and B; Table 2 (CSV, JSON) and the fixed sample's heatmaps per epoch (PNG)."""
    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.artifacts import mask_iou

    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.benchmark_review import Pool

    # deferred: loads matplotlib, scikit-learn, scipy, torch
    from analysis.spray.plots import heatmap_row

    # deferred: loads scikit-image, scikit-learn, scipy, torch
    from analysis.spray.unhans import (
        confusion_counts,
        heatmap_epochs,
        nearest_by_confusion,
        random_classes,
        unhans_table2,
    )

    params = {**{name: field.initial for name, field in unhans_form(ctx).base_fields.items()}, **params}
    task = _cluster_task(ctx, params.get("cluster", ""))
    cls, members = int(task.payload["cls"]), task_members(task.payload)
    bench, handle = spray_inputs(ctx, staged(progress, 0.0, 0.05))
    progress(60, 1000, "isolating the artifact")
    mask, patch = isolate_artifact(bench, handle, members)
    n_others = int(params["n_others"])
    if params["others"] == "confusion":
        val_x, val_y = bench.split(VAL).tensors()
        classes = nearest_by_confusion(confusion_counts(handle, val_x, val_y), cls, n_others)
    else:
        classes = random_classes(bench.num_classes, cls, n_others, int(params["seed"]))
    train_pool = Pool.of(bench, ["train"], classes, int(params["train_per_class"]))
    train_x, train_y = train_pool.tensors(bench)
    val_pool = Pool.of(bench, [VAL], classes)
    val_x, val_y = val_pool.tensors(bench)
    carries = carriers(bench, cls, "train", members)[train_pool.index]
    val_marked = carriers(bench, cls, VAL, members)[val_pool.index]
    own = np.flatnonzero(val_y.numpy() == cls)
    if not len(own):
        raise ValueError(f"class {task.payload['class_name']!r} has no validation image to follow")
    marked = own[val_marked[own]]
    sample = int(marked[0] if len(marked) else own[0])
    epochs = int(params["epochs"])
    report = unhans_table2(handle, train_x, train_y, val_x, val_y, cls, patch, mask, carries=carries,
                           val_carries=val_marked, classes=classes, epochs=epochs, lr=float(params["lr"]),
                           seed=int(params["seed"]),
                           snapshot_epochs=heatmap_epochs(epochs), sample=sample,
                           progress=staged(progress, 0.1, 0.85))
    names = bench.class_names
    truth = planted_mask(bench, cls)  # the planted cue's true mask: did B train on the real artifact?
    image = (val_x[sample].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    artifact = (np.where(mask[..., None], patch.permute(1, 2, 0).numpy(), 0.5) * 255).round().astype(np.uint8)
    files = [OutputFile("unhans_start.png", heatmap_row(
        [("isolated artifact", artifact), ("sample", image), ("trained model", report["sample_heatmap"])],
        f"{names[cls]}: the artifact and the sample's heatmap before fine-tuning"), "Un-Hans: artifact and sample")]
    plots = {}
    for epoch in sorted(report["heatmaps"]["A"]):
        plots[epoch] = f"unhans_epoch{epoch}.png"
        files.append(OutputFile(plots[epoch], heatmap_row(
            [("sample", image), (f"A, epoch {epoch}", report["heatmaps"]["A"][epoch]),
             (f"B, epoch {epoch}", report["heatmaps"]["B"][epoch])], f"{names[cls]}: heatmaps after epoch {epoch}"),
            f"Un-Hans: heatmaps after epoch {epoch}"))
    table = pd.DataFrame(report["table"])
    table.insert(1, "training", table["model"].map({"trained": "none (the trained model)", "A": "subset A",
                                                    "B": "subset B (artifact on every image)"}))
    summary = {"cluster": task.key, "class": cls, "class_name": names[cls],
               "classes": [{"index": c, "name": names[c]} for c in report["classes"]],
               "train_images": report["train_images"], "val_images": report["val_images"],
               "carriers": report["carriers"], "val_clean_images": report["val_clean_images"],
               "val_carrying_images": report["val_carrying_images"], "mask_pixels": int(mask.sum()),
               "artifact_iou": None if truth is None else mask_iou(mask, truth), "sample": sample,
               "sample_carries_artifact": bool(len(marked)), "settings": dict(params),
               "table": report["table"], "plots": {str(e): f for e, f in plots.items()}}
    progress(1000, 1000, "un-Hans done")
    return files + [
        OutputFile("unhans_table2.csv", safe_csv_bytes(table), "Un-Hans Table 2: accuracy on cue-free, "
                                                                "cue-carrying and artifact-added validation images"),
        OutputFile("unhans_table2.json", json.dumps(summary, indent=1).encode(), "Un-Hans (JSON)")]


# -- the blunter option: retrain without the cluster's images ----------------------------------------
def unhans_drop_form(ctx: StudyContext) -> type[forms.Form]:
    """Choose the reviewed cluster whose training images the retrain leaves out."""
    choices, initial = _cluster_choices(ctx)

    class UnhansDropForm(forms.Form):
        cluster = forms.ChoiceField(choices=choices, initial=initial,
                                    help_text="Its training images are left out of the retrain.")

    return UnhansDropForm


def run_unhans_drop(ctx: StudyContext, params: Mapping[str, Any], progress: Progress) -> list[OutputFile]:
    """Retrain the study's model without a cluster's training images; bias-flipped accuracy before/after."""
    # deferred: loads scikit-image, scikit-learn, scipy, torch
    from analysis.spray.unhans import train_config_of, unhans_retrain

    task = _cluster_task(ctx, params.get("cluster", ""))
    bench, handle, checkpoint = spray_inputs(ctx, staged(progress, 0.0, 0.1), with_checkpoint=True)
    report = unhans_retrain(bench, task_members(task.payload)["train"], base_handle=handle,
                            base_config=train_config_of(checkpoint), artifact_class=int(task.payload["cls"]),
                            progress=staged(progress, 0.1, 0.9))
    report.pop("model")  # the retrained weights stay out of the study's files
    report = {"cluster": task.key, **report}
    return [OutputFile("unhans.json", json.dumps(report, indent=1, default=float).encode(),
                       f"Un-Hans retrain without {task.key}")]


JOBS = {
    "unhans": KindJob("Un-Hans (§3.3): fine-tune on subsets A and B", unhans_form, run_unhans,
                      needs_validation="Un-Hans (§3.3: Table 2 on validation images)"),
    "unhans_drop": KindJob("Retrain without a cluster's images", unhans_drop_form, run_unhans_drop,
                           needs_validation="Un-Hans (retrained, evaluated on validation images)"),
}
