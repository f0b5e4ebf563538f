"""``misclassification`` (Stock & Cisse, ECCV 2018, §3.1): is the class the model predicted relevant to the image?

Three variants (study setting ``variant``):

* ``top1``: a misclassified image with the predicted class (name, description, 3 examples); yes/no.
* ``top5``: an image with each of the model's top-k classes (k = 5, fewer on a benchmark with few
  classes); one yes/no per class. Setting ``top5_protocol`` (Stock & Cisse §3.1): ``topk_mistakes`` shows the
  images whose truth is not among the top k, ``top1_mistakes`` the top-1 mistakes (their truth may
  be among the k classes shown).
* ``adversarial``: a correctly classified image attacked by I-FGSM until its prediction flips, shown
  with the adversarial class either ``whole`` or as its LIME ``explanation``, plus the ``clean``
  image with its (correct) class as the control. The three conditions of one image share a
  ``exclusion_group``: a worker who had one of them is never offered another (``selectors.tasks_open_for``).

An answer's label (``relevant``) is ``yes``/``no``, or for a top-k task the ranks answered yes
(``"1+3"``/``"none"``, derived on submit). An image is *rectified* when one shown class gets at
least ``threshold`` yes answers (default 4 of 5).

Outputs: ``images.csv`` (per image: truth, classes shown, yes count, rectified); ``rectified_error.csv``
(Table 1: top-1 error -> rectified error per model); for ``top5`` ``rectified_topk_table.csv`` (§4's
rectified top-5 error for the protocol); for ``adversarial`` ``adversarial_table.csv`` (Table 2: top-1
error on the adversarial images, rectified error whole vs explanation with Wilson intervals, the clean
control row); ``yes_histogram.csv``/``.png`` (the histogram of yes answers per image, Fig. 3);
``misclassification_summary.json`` (the results page).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from django import forms

from analysis.exports import safe_csv_bytes
from analysis.misclassification.aggregation import (
    NEGATIVE,
    POSITIVE,
    TOPK_PROTOCOLS,
    Rectify,
    adversarial_table,
    encode_ranks,
    plot_yes_histogram,
    rectified_error_table,
    rectified_topk_table,
    yes_histogram,
    yes_ranks,
)
from annotation.task_kinds import OutputFile, Progress, StudyContext, TaskKind, TaskSpec, register_task_kind, staged
from annotation.task_kinds.base import read_json
from annotation.task_kinds.benchmark import (
    BenchmarkOverridesForm,
    class_info,
    data_source,
    has_truth,
    model_inputs,
    model_source,
    models_field,
    num_classes,
)
from annotation.task_kinds.fields import ChoiceField

YES_NO = ("yes", "no")
YES_NO_LABELS = ("Yes", "No")
VARIANTS = [("top1", "Top-1: the predicted class of misclassified images"),
            ("top5", "Top-5: the 5 predicted classes of top-5-misclassified images"),
            ("adversarial", "Adversarial examples: whole vs LIME explanation, clean images as control")]
CONDITIONS = ("clean", "whole", "explanation")
SUMMARY = "misclassification_summary.json"


class MisclassificationSettingsForm(BenchmarkOverridesForm):
    variant = forms.ChoiceField(choices=VARIANTS, initial="top1")
    models = models_field(["standard"], "Models whose mistakes are judged (the adversarial variant attacks the first).")
    split = forms.ChoiceField(
        choices=[("flipped", "flipped: planted cues on other classes' images"),
                 ("test", "test: cues on their own class")],
        initial="flipped", help_text="On 'flipped' many mistakes predict a class whose cue is really in the image.")
    top_k = forms.IntegerField(min_value=2, max_value=10, initial=5, help_text="Classes per top-k task.")
    top5_protocol = forms.TypedChoiceField(
        choices=list(TOPK_PROTOCOLS.items()), initial="topk_mistakes", required=False, empty_value="topk_mistakes",
        help_text="Top-k variant: which mistakes are shown with the top-k predictions (Stock & Cisse §4: "
                  "ResNet-101 6.44 % top-5 error -> 1.94 % rectified with top-1 mistakes, 1.37 % with top-5 mistakes).")
    max_images = forms.IntegerField(
        min_value=1, max_value=100000, initial=40,
        help_text="At most this many images per model (a random sample; errors are scaled).")
    threshold = forms.IntegerField(min_value=1, max_value=50, initial=4, help_text="Yes answers needed to rectify.")
    fgsm_step = forms.FloatField(min_value=1e-5, max_value=0.5, initial=0.001,
                                 help_text="I-FGSM step on [0, 1] pixels.")
    fgsm_max_steps = forms.IntegerField(min_value=1, max_value=100, initial=10)
    lime_samples = forms.IntegerField(min_value=10, max_value=10000, initial=1000,
                                      help_text="LIME perturbation samples.")
    lime_segment_size = forms.IntegerField(
        min_value=16, max_value=1024, required=False, initial=224,
        help_text="Quickshift runs on the image resized to this side (the paper's 224 px), so the top 8 superpixels "
                  "hide at least half of a small image; empty = the image's own size.")


def shown_k(conf: Mapping[str, Any]) -> int:
    """Classes shown per task: 1, or for top-k tasks ``top_k`` (at most the dataset's classes - 1, at least 2)."""
    if conf["variant"] != "top5":
        return 1
    return max(2, min(int(conf["top_k"]), num_classes(conf) - 1))


def class_truth(bench, split, index: int, cls: int, region: np.ndarray | None = None) -> bool:
    """Is class ``cls`` really present in image ``index``: its own class, or the planted cue of ``cls``
    (e.g. the separate object of the Shirt class)? ``region``: only what this mask keeps counts."""
    # deferred: loads scikit-image, torch
    from analysis.datasets.benchmark import BIAS_KINDS

    def visible(mask: np.ndarray) -> bool:
        if region is None:
            return bool(mask.any())
        return bool(mask.any()) and (mask & region).sum() >= 0.25 * mask.sum()

    if int(split.labels[index]) == cls:
        return visible(split.object_masks[index].astype(bool))
    kind = int(split.bias_kinds[index])
    return kind >= 0 and any(b.label == cls and b.kind == BIAS_KINDS[kind] for b in bench.biases) and visible(
        split.bias_masks[index].astype(bool))


@register_task_kind
class Misclassification(TaskKind):
    name = "misclassification"
    title = "Misclassification agreement: is the predicted class relevant?"
    template = "annotation/kinds/misclassification.html"
    results_template = "annotation/kinds/misclassification_results.html"
    label_field = "relevant"
    settings_form = MisclassificationSettingsForm

    # -- answers -----------------------------------------------------------------------------
    def answer_fields(self, conf) -> list:
        k = shown_k(conf)
        if k > 1:
            return [ChoiceField(f"class_{rank}", YES_NO, YES_NO_LABELS) for rank in range(1, k + 1)]
        return [ChoiceField("relevant", YES_NO, YES_NO_LABELS)]

    def validate_answer(self, payload: Mapping[str, Any], conf) -> dict[str, Any]:
        cleaned = super().validate_answer(payload, conf)
        k = shown_k(conf)
        if k > 1:  # top-k: the label is the set of ranks answered yes
            cleaned["relevant"] = encode_ranks(r for r in range(1, k + 1) if cleaned[f"class_{r}"] == "yes")
        return cleaned

    def aggregator(self, conf: Mapping[str, Any]) -> Rectify:
        wanted = int(conf["workers_per_task"])
        return Rectify(threshold=min(int(conf["threshold"]), wanted), wanted=wanted)

    def simulate_answer(self, task, conf, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        classes = task.payload["classes"]
        if task.truth is None:  # no ground truth: a dry run answers at random
            truth = {c["rank"] for c in classes if rng.random() < 0.5}
        else:
            truth = yes_ranks(task.truth.get("relevant"))

        def noisy(rank: int) -> str:
            right = "yes" if rank in truth else "no"
            return right if rng.random() < accuracy else ("no" if right == "yes" else "yes")

        if len(classes) > 1:
            return {f"class_{c['rank']}": noisy(c["rank"]) for c in classes}
        return {"relevant": noisy(classes[0]["rank"])}

    def expected_label(self, task) -> str | None:
        truth = (task.truth or {}).get("relevant")
        return None if truth is None else (POSITIVE if yes_ranks(truth) else NEGATIVE)

    # -- evidence ----------------------------------------------------------------------------
    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec]:
        # deferred: loads torch
        from analysis.misclassification.evidence import adversarial_with_explanations

        # deferred: loads scikit-image, torch
        from analysis.salient.benchmark_inputs import example_indices

        # deferred: loads scikit-image, scikit-learn, scipy, torch, zennit (torch)
        from analysis.streaming import PassSpec

        c = ctx.conf
        models = list(c["models"]) or ["standard"]
        bench, handles, paths = model_inputs(ctx, models, staged(progress, 0.0, 0.3))
        split = bench.split(c["split"])
        store = ctx.store
        examples: dict[int, list[str]] = {}

        def class_entry(rank: int, cls: int) -> dict[str, Any]:
            if cls not in examples:
                train = bench.split("train")
                examples[cls] = store.images(train.images[example_indices(bench, cls)], kind="example")
            return {"rank": rank, "field": f"class_{rank}", "cls": int(cls), **class_info(bench, int(cls)),
                    "examples": examples[cls]}

        rng = np.random.default_rng(0)
        if c["variant"] in ("top1", "top5"):
            k = shown_k(c)
            for m, model in enumerate(models):
                report = staged(progress, 0.3 + 0.7 * m / len(models), 0.7 / len(models))
                report(0, 1, f"predictions of the {model} model")
                spec = PassSpec(kind="predictions", model=model_source(ctx, model, paths[model]),
                                data=data_source(ctx, bench, c["split"]), params={"k": k})
                predictions = ctx.run_pass(spec, report)
                topk = np.zeros((len(split), k), dtype=np.int64)  # streamed, in pass order: back to dataset order
                topk[predictions.indices] = predictions.topk
                topk_wrong = predictions.misclassified(k)
                protocol = c["top5_protocol"] if k > 1 else ""
                wrong = predictions.misclassified(1) if protocol == "top1_mistakes" else topk_wrong
                shown = np.sort(rng.permutation(wrong)[: int(c["max_images"])])
                for done, index in enumerate(shown):
                    report(done, len(shown), f"storing misclassified images of the {model} model")
                    classes = [class_entry(r + 1, cls) for r, cls in enumerate(topk[index, :k])]
                    ranks = [e["rank"] for e in classes if has_truth(bench) and class_truth(bench, split, index,
                                                                                            e["cls"])]
                    yield TaskSpec(
                        key=f"{model}-{c['variant']}-{index}",
                        payload={"variant": c["variant"], "model": model, "image_index": int(index),
                                 "true": int(split.labels[index]), "true_name": bench.class_names[split.labels[index]],
                                 "image": store.images(split.images[[index]])[0], "classes": classes,
                                 "n_images": len(predictions.indices), "n_errors": int(len(wrong)), "k": k,
                                 "protocol": protocol, "n_topk_errors": int(len(topk_wrong)),
                                 "truth_in_topk": bool(int(split.labels[index]) in topk[index, :k])},
                        truth={"relevant": ("yes" if ranks else "no") if k == 1 else encode_ranks(ranks)}
                        if has_truth(bench) else None,
                    )
            return
        if c["variant"] != "adversarial":
            raise ValueError(f"unknown variant {c['variant']!r}")
        model = models[0]
        pool = np.sort(rng.permutation(len(split))[: int(c["max_images"]) * 3])  # attack a few, keep the flipped
        pool_images, pool_labels = split.tensors(pool)
        result = adversarial_with_explanations(
            handles[model], pool_images, pool_labels, step=float(c["fgsm_step"]),
            max_steps=int(c["fgsm_max_steps"]),
            lime={"num_samples": int(c["lime_samples"]), "segment_size": c["lime_segment_size"]},
            progress=staged(progress, 0.3, 0.6))
        keep = list(range(min(len(result["indices"]), int(c["max_images"]))))
        adv = result["adversarial"]
        for j in keep:
            local = int(result["indices"][j])
            index = int(pool[local])
            true = int(split.labels[index])
            adv_cls = int(adv.predictions[local])
            explanation = result["explanations"][j]
            shown = {"clean": (split.images[index], true, None), "whole": (result["images"][j], adv_cls, None),
                     "explanation": (explanation.image, adv_cls, explanation.mask)}
            for condition, (image, cls, region) in shown.items():
                stored = store.images(image[None], kind="image" if condition == "clean" else "adversarial")[0]
                yield TaskSpec(
                    key=f"adv-{condition}-{index}",
                    payload={"variant": "adversarial", "model": model, "condition": condition, "image_index": index,
                             "true": true, "true_name": bench.class_names[true],
                             "image": stored,
                             "classes": [class_entry(1, cls)], "exclusion_group": f"image-{index}",
                             "steps": int(adv.steps[local]), "n_images": len(pool), "n_errors": int(adv.flipped.sum()),
                             "k": 1},
                    truth={"relevant": "yes" if class_truth(bench, split, index, cls, region) else "no"}
                    if has_truth(bench) else None,
                )
        progress(1000, 1000, f"{len(keep)} adversarial images in 3 conditions")

    # -- outputs -----------------------------------------------------------------------------
    def build_outputs(self, ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        return misclassification_outputs(ctx, labels, progress)

    def results_context(self, ctx: StudyContext) -> dict[str, Any]:
        return {"summary": read_json(ctx, SUMMARY)}


def images_table(ctx: StudyContext, labels: pd.DataFrame) -> pd.DataFrame:
    """One row per judged image (and condition) with the totals of its model repeated."""
    tasks = {t.pk: t for t in ctx.tasks() if "classes" in t.payload and not t.is_gold}
    rows = []
    for row in labels.to_dict("records"):
        task = tasks.get(row["task"])
        if task is None:
            continue
        p = task.payload
        label = row["label"]
        rows.append({
            "task": task.pk, "task_key": task.key, "model": p["model"], "variant": p["variant"],
            "condition": p.get("condition", ""), "protocol": p.get("protocol", ""), "image": p["image_index"],
            "true": p["true_name"], "predicted": " | ".join(cl["class_name"] for cl in p["classes"]),
            "truth_in_topk": bool(p.get("truth_in_topk", False)),
            "yes_count": int(row.get("count_yes", 0) or 0), "n_answers": int(row["n_answers"]),
            "rectified": None if label is None or label == "" else label == POSITIVE,
            "n_images": p["n_images"], "n_errors": p["n_errors"], "n_topk_errors": p.get("n_topk_errors"),
        })
    return pd.DataFrame(rows, columns=["task", "task_key", "model", "variant", "condition", "protocol", "image", "true",
                                       "predicted", "truth_in_topk", "yes_count", "n_answers", "rectified",
                                       "n_images", "n_errors", "n_topk_errors"])


def misclassification_outputs(ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
    images = images_table(ctx, labels)
    files = [OutputFile("images.csv", safe_csv_bytes(images.drop(columns=["n_images", "n_errors", "n_topk_errors"])),
                        "Per-image table (true, predicted, yes-count, rectified)")]
    if images.empty:
        return files
    wanted = int(ctx.conf["workers_per_task"])
    tables: dict[str, pd.DataFrame] = {}
    if (images["variant"] == "adversarial").any():
        tables["adversarial_table"] = adversarial_table(images)
        files.append(OutputFile("adversarial_table.csv", safe_csv_bytes(tables["adversarial_table"]),
                                "Table 2: top-1 error on adversarial images, rectified error whole vs explanation"))
        hist = yes_histogram(images.assign(variant=images["condition"]), wanted)
    else:
        tables["rectified_error"] = rectified_error_table(images)
        files.append(OutputFile("rectified_error.csv", safe_csv_bytes(tables["rectified_error"]),
                                "Plain and rectified error per model (Table 1)"))
        topk = images[images["protocol"] != ""]
        if len(topk):
            tables["rectified_topk"] = rectified_topk_table(topk)
            files.append(OutputFile("rectified_topk_table.csv", safe_csv_bytes(tables["rectified_topk"]),
                                    "Top-k error and rectified top-k error per model and protocol (§4)"))
        hist = yes_histogram(images, wanted)
    files.append(OutputFile("yes_histogram.csv", safe_csv_bytes(hist), "Images per number of yes"))
    files.append(OutputFile("yes_histogram.png", plot_yes_histogram(hist), "Histogram of yes answers per image"))
    summary = {name: json.loads(t.to_json(orient="records")) for name, t in tables.items()}
    summary["images"] = len(images)
    summary["variant"] = str(ctx.conf["variant"])
    files.append(OutputFile(SUMMARY, json.dumps(summary).encode(), "Tables of the results page"))
    progress(1, 1, "outputs ready")
    return files
