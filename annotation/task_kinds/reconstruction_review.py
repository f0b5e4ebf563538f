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
from analysis.reconstruction.bias import DEFAULT_PAIR, INTENSITY, TITLES, VARIANTS, unique_triggers
from analysis.reconstruction.plots import accuracy_ssim_png, loss_curves_png, pairs_png
from analysis.reconstruction.review import best_matched, fraction_box, review_plot, review_table, upscaled
from annotation.task_kinds import (
    KindJob,
    OutputFile,
    Progress,
    StudyContext,
    TaskKind,
    TaskSpec,
    register_task_kind,
    staged,
)
from annotation.task_kinds.base import read_json
from annotation.task_kinds.benchmark import (
    BenchmarkOverridesForm,
    RegistryChoiceField,
    folder_dataset,
    model_inputs,
)
from annotation.task_kinds.fields import ChoiceField, PointField

OBJECT = ("yes", "no")
OBJECT_LABELS = ("Yes, the main object was reconstructed", "No")
VARIANT_TITLES = {
    "positional": "Positional trigger levels L1–L3 and the base model (the paper's §4.1)",
    "contrast": "Contrast 0.5 / 2 and the base model (the paper's §5.3.2)",
    "intensity": "Intensity triggers in one corner (an extra variant, not the paper's)",
}
SUMMARY = "reconstruction_summary.json"
FASHION_SIZE = 28
#: The form's bound on the image side; the data's own size bounds it further (checked when the data is read).
MAX_SIZE = 256
TABLE = "accuracy_vs_ssim"
REVIEW = "crowd_review"
TABLE2 = "table2.csv"
TABLE2_COLUMNS = ["dataset", "model", "level", "test_accuracy", "mean_best_k_ssim", "k", "test_size"]
TABLE_COLUMNS = ["level", "title", "test_accuracy", "best_k_mean", "k", "train_accuracy", "test_size",
                 "trigger_shown_best_k", "test_accuracy_other_trigger"]


SOURCES = [("fashion-mnist", "Fashion-MNIST garments (the built-in benchmark's data)"),
           ("dataset", "The dataset below: two class folders of a registered image folder (its validation folder "
                       "gives the test accuracy), or two classes of the built-in benchmark; in grey")]


class ReconstructionSettingsForm(BenchmarkOverridesForm):
    dataset = RegistryChoiceField("dataset", initial="benchmark", required=False,
                                  help_text="With the source 'dataset': a registered image folder, or the built-in "
                                            "benchmark (empty = the benchmark).")
    source = forms.ChoiceField(choices=SOURCES, initial="fashion-mnist",
                               help_text="Where the two classes come from (the paper: CIFAR-10 vehicles/animals or "
                                         "MNIST odd/even; register such a folder and pick two of its classes).")
    classes = forms.CharField(initial=",".join(map(str, DEFAULT_PAIR)),
                              help_text="Two class indices (Fashion-MNIST 0-9, or the dataset's): the -1 side (trigger "
                                        "value 0, contrast 0.5), then the +1 side (trigger 1, contrast 2). Pick two "
                                        "classes the model does not tell apart at a glance, so that a trigger is a "
                                        "shortcut (default T-shirt/top vs Shirt; the paper's tasks: 77-90 % clean "
                                        "accuracy).")
    variant = forms.ChoiceField(choices=list(VARIANT_TITLES.items()), initial="positional",
                                help_text="Which models one study trains: every protocol includes the base model.")
    per_side = forms.IntegerField(min_value=2, max_value=500, initial=50, help_text="Training images per side.")
    size = forms.IntegerField(min_value=8, max_value=MAX_SIZE, initial=16,
                              help_text="Grey images of size × size, at most the data's own size (Fashion-MNIST: "
                                        "28; a folder: its smallest image side among the two classes).")
    hidden = forms.IntegerField(min_value=8, max_value=1000, initial=1000,
                                help_text="Width of both hidden layers (the paper: 1000).")
    trigger_share = forms.FloatField(min_value=0.05, max_value=1.0, initial=0.5,
                                     help_text="Intensity variant only: share of the +1 side's images with the "
                                               "trigger (the paper's levels put one on every image).")
    steps = forms.IntegerField(min_value=10, max_value=100_000, initial=3000, help_text="Reconstruction steps.")
    review_k = forms.IntegerField(min_value=1, max_value=50, initial=5,
                                  help_text="Best reconstructions per class and model shown to the crowd.")
    object_ssim = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.4,
                                   help_text="Reference for the crowd's answer: a reconstruction shows its main "
                                             "object when its SSIM (3×3 window, the reference code's) with its "
                                             "training image is at least this and above that of the unoptimised "
                                             "start (the training mean).")
    seed = forms.IntegerField(min_value=0, initial=0)

    def clean_classes(self) -> list[int]:
        try:
            classes = [int(p) for p in self.cleaned_data["classes"].split(",") if p.strip()]
        except ValueError as exc:
            raise forms.ValidationError("give two class indices as whole numbers, e.g. 0,8") from exc
        if len(classes) != 2 or classes[0] == classes[1] or not all(c >= 0 for c in classes):
            raise forms.ValidationError("give two different class indices, e.g. 0,8")
        return classes

    def clean_dataset(self) -> str:
        return self.cleaned_data.get("dataset") or "benchmark"

    def clean(self) -> dict:
        data = super().clean()
        if data.get("source") == "fashion-mnist":
            if data.get("classes") and not all(c < 10 for c in data["classes"]):
                self.add_error("classes", "give two different Fashion-MNIST classes (0-9), e.g. 0,8")
            if data.get("size") and data["size"] > FASHION_SIZE:
                self.add_error("size", f"Fashion-MNIST images are {FASHION_SIZE} px: the size can be at most that")
        return data


def _run_config(c: Mapping[str, Any], level: str) -> dict[str, Any]:
    """One model's pipeline config (the intensity share only where it matters, so that it keys no other cache)."""
    config = {"source": "benchmark" if c["source"] == "dataset" else c["source"], "classes": list(c["classes"]),
              "per_side": c["per_side"], "size": c["size"],
              "hidden": c["hidden"], "bias": level, "steps": c["steps"], "seed": c["seed"]}
    if level in INTENSITY:
        config["trigger_share"] = c["trigger_share"]
    return config


def source_data(ctx: StudyContext, progress: Progress) -> tuple[Any, str | None]:
    """For ``source = "dataset"``: the study's dataset (the built-in benchmark, or the registered folder read at
    ``size``) and the key of its files; the size is refused when above the data's own. (None, None) otherwise."""
    c = ctx.conf
    if c["source"] != "dataset":
        return None, None
    # deferred: loads PIL
    from analysis.reconstruction.sources import check_size, data_key

    entry = ctx.inputs["dataset"]
    if entry["builtin"]:
        dataset, _, _ = model_inputs(ctx, [], progress)
    else:
        dataset = folder_dataset(entry, image_size=int(c["size"]), mode=c["resize"])
    bad = [k for k in c["classes"] if k >= dataset.num_classes]
    if bad:
        raise ValueError(f"classes {bad} are not classes of {entry['name']!r} (0..{dataset.num_classes - 1})")
    check_size(dataset, c["classes"], int(c["size"]))
    return dataset, data_key(dataset)


def cached_run(config: dict[str, Any], work_dir: Path, progress: Progress, dataset=None,
               dataset_key: str | None = None) -> dict:
    """Run (or reuse) one model's training, test accuracy and reconstruction; cached by configuration, the data's
    files (``dataset_key``) and the version of the code that computes the result
    (:data:`~analysis.reconstruction.pipeline.RESULT_VERSION`)."""
    # deferred: loads scikit-image, torch
    from analysis.reconstruction.pipeline import (
        RESULT_VERSION, build_task, build_test, load, make_config, run_reconstruction, save,
    )

    keyed = {"result_version": RESULT_VERSION, **make_config(config)}
    if dataset_key:
        keyed["dataset"] = dataset_key
    key = hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()[:16]
    directory = Path(work_dir) / "reconstruction" / key
    try:
        return load(directory)
    except ValueError:
        pass
    result = run_reconstruction(build_task(config, dataset), config, progress, test=build_test(config, dataset))
    save(result, directory)
    return load(directory)


def _level_entry(level: str, result: dict) -> dict[str, Any]:
    report = result.get("trigger_report")
    return {
        "level": level, "title": TITLES[level], "test_accuracy": result["test_accuracy"],
        "test_accuracy_other_trigger": result.get("test_accuracy_other_trigger"), "test_size": result["test_size"],
        "best_k_mean": result["best_k_mean"], "k": result["k"],
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
        # positional levels: the clean test images with the other side's trigger (how much the model takes it as a
        # shortcut, seed 000 section 4)
        "test_accuracy_other_trigger": np.nan if e.get("test_accuracy_other_trigger") is None
        else e["test_accuracy_other_trigger"],
    } for e in levels], columns=TABLE_COLUMNS)


def dataset_title(ctx: StudyContext) -> str:
    """The data set as Table 2 names it: the source and its two classes."""
    c = ctx.conf
    if c["source"] == "fashion-mnist":
        # deferred: loads scikit-image
        from analysis.datasets.fashion_mnist import CLASS_NAMES

        return f"Fashion-MNIST ({' vs '.join(CLASS_NAMES[k] for k in c['classes'])})"
    entry = ctx.inputs["dataset"]
    names = {int(info["index"]): info["name"] for info in entry.get("classes") or []}
    pair = " vs ".join(names.get(k, str(k)) for k in c["classes"])
    return f"{'benchmark' if entry['builtin'] else entry['name']} ({pair})"


def table2(levels: list[dict], dataset: str) -> pd.DataFrame:
    """The seed paper's Table 2: per data set and model, the clean test accuracy and the mean of the best 10 SSIMs."""
    return pd.DataFrame([{"dataset": dataset, "model": e["title"], "level": e["level"],
                          "test_accuracy": round(float(e["test_accuracy"]), 4),
                          "mean_best_k_ssim": round(float(e["best_k_mean"]), 4), "k": e["k"],
                          "test_size": e["test_size"]} for e in levels], columns=TABLE2_COLUMNS)


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
            ssim = float(result["nearest_ssim"][train_index])
            start = float(result["baseline_initial_nearest_ssim"][train_index])
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
    dataset, key = source_data(ctx, progress)
    summary = {"settings": {k: c[k] for k in ReconstructionSettingsForm.base_fields}, "levels": [],
               "dataset": dataset_title(ctx)}
    for i, level in enumerate(levels):
        result = cached_run(_run_config(c, level), ctx.work_dir, staged(progress, i / len(levels), 0.95 / len(levels)),
                            dataset, key)
        yield OutputFile(f"pairs_{level}.png", pairs_png(result),
                         f"Best reconstructions and their nearest training images ({TITLES[level]})")
        yield OutputFile(f"loss_{level}.png", loss_curves_png(result), f"Training and reconstruction loss "
                                                                       f"({TITLES[level]})")
        summary["levels"].append(_level_entry(level, result))
        yield from review_tasks(ctx, level, result)
    table = accuracy_table(summary["levels"])
    summary["table2"] = table2(summary["levels"], summary["dataset"]).to_dict("records")
    yield OutputFile(f"{TABLE}.csv", safe_csv_bytes(table), "Clean test accuracy and mean best-10 SSIM per model")
    yield OutputFile(TABLE2, safe_csv_bytes(pd.DataFrame(summary["table2"], columns=TABLE2_COLUMNS)),
                     "Table 2 of the seed paper: test accuracy and mean best-10 SSIM per data set and model")
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


SEARCH = "hyperparameter_search"


def search_form(ctx: StudyContext) -> type[forms.Form]:
    """The search's size: trials, reconstruction steps per trial, which model of the protocol, the seed."""
    levels = VARIANTS[ctx.conf.get("variant") or "positional"]

    class SearchForm(forms.Form):
        trials = forms.IntegerField(min_value=1, max_value=200, initial=4,
                                    help_text="Random draws of lr, λ_min, initial scale and α (the reference "
                                              "sweep's distributions).")
        steps = forms.IntegerField(min_value=10, max_value=100_000, initial=200,
                                   help_text="Reconstruction steps per trial (the reference sweep: 50,000).")
        level = forms.ChoiceField(choices=[(lv, TITLES[lv]) for lv in levels], initial=levels[0],
                                  help_text="The model whose weights the trials reconstruct from.")
        seed = forms.IntegerField(min_value=0, initial=0, help_text="Seeds the draws.")

    return SearchForm


def run_search(ctx: StudyContext, params: Mapping[str, Any], progress: Progress) -> list[OutputFile]:
    """Haim et al. (2022, App.)'s random search of the reconstruction hyper-parameters on one model of the study,
    ranked by best-10 SSIM; the table as CSV and JSON (the results page shows it)."""
    # deferred: loads scikit-image, torch
    from analysis.reconstruction.pipeline import build_task, build_test, make_config
    from analysis.reconstruction.search import SPACE, hyperparameter_search

    c = ctx.conf
    dataset, _ = source_data(ctx, staged(progress, 0.0, 0.05))
    config = make_config({**_run_config(c, params["level"]), "steps": int(params["steps"])})
    table, info = hyperparameter_search(build_task(config, dataset), config, int(params["trials"]),
                                        seed=int(params["seed"]), test=build_test(config, dataset),
                                        progress=staged(progress, 0.05, 0.95))
    summary = {"settings": dict(params), "title": TITLES[params["level"]], "dataset": dataset_title(ctx),
               "reference_names": {name: spec[0] for name, spec in SPACE.items()},
               "space": {name: {"distribution": spec[1], "low": spec[2], "high": spec[3]}
                         for name, spec in SPACE.items()},
               **info, "trials": json.loads(table.sort_values("rank").to_json(orient="records"))}
    progress(1000, 1000, "search done")
    return [OutputFile(f"{SEARCH}.csv", safe_csv_bytes(table.sort_values("rank")),
                       "Hyper-parameter search: each trial's lr, λ_min, initial scale, α and best-10 SSIM"),
            OutputFile(f"{SEARCH}.json", json.dumps(summary, indent=1, default=float).encode(),
                       "Reconstruction hyper-parameter search (JSON)")]


@register_task_kind
class ReconstructionReview(TaskKind):
    name = "reconstruction_review"
    title = "Recovered samples: was the main object reconstructed?"
    template = "annotation/kinds/reconstruction_review.html"
    label_field = "object"
    settings_form = ReconstructionSettingsForm
    results_template = "annotation/kinds/reconstruction_review_results.html"
    jobs = {SEARCH: KindJob("Hyper-parameter search (Haim et al. 2022, App.): random search, best-10 SSIM",
                            search_form, run_search)}

    def answer_fields(self, conf) -> list:
        return [ChoiceField("object", OBJECT, OBJECT_LABELS),
                PointField("trigger", legend="Where is a trigger?",
                           hint="optional: click on a square or pattern that is not part of the object")]

    def validation_use(self, conf) -> str:
        if conf.get("source") == "dataset":
            return "The clean test accuracy of the recovered-sample models (Table 2)"
        return ""

    def inputs_problem(self, conf, inputs) -> tuple[str, str] | None:
        """A registered folder's two classes must exist and hold ``per_side`` training images each."""
        entry = inputs.get("dataset")
        if conf.get("source") != "dataset" or not entry or entry["builtin"]:
            return None
        classes = {int(info["index"]): info for info in entry["classes"]}
        for k in conf["classes"]:
            if k not in classes:
                return "classes", f"class {k} is not a class of {entry['name']!r} (0..{len(classes) - 1})"
            have = int((entry.get("counts") or {}).get(classes[k]["folder"], 0))
            if have < int(conf["per_side"]):
                return "per_side", (f"class folder {classes[k]['folder']!r} of {entry['name']!r} has {have} readable "
                                    f"images, fewer than per_side = {conf['per_side']}")
        return None

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
                "search": read_json(ctx, f"{SEARCH}.json"),
                "variant_title": VARIANT_TITLES.get(ctx.conf.get("variant"), "")}
