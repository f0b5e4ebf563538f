"""``feature_panel`` (Salient ImageNet §3.1, App. C): is this neural feature core or spurious for the class?

A task shows the class (name, synonyms, supercategory, definition, links, 3 example images without
a planted cue), solved examples of each answer and, for one of the class's top features, the top-k
images the model predicts as the class, their NAM heatmaps ("highlighted") and feature-attack images
("amplified"). Answer: ``main`` (main object / separate object / background), a required reason and
a confidence 1-5. Spurious when at least ``spurious_threshold`` answers say separate object or
background (default: a strict majority of the study's workers per task).

The paper's HIT (App. C; the reference HIT ``mturk_code/discover_sec3_3_study_code.html``) always
shows fixed solved examples, and "some of the visualizations below are from the given solved examples
... you must correctly answer at least 60% of them". Here the solved examples are the researcher's
``solved_examples`` (panel keys ``c<class>-f<feature>`` with their answers) or, on the benchmark when
none are named, one panel per answer from its truth. Every panel whose answer is known — the
benchmark's truth, the researcher's ``gold_answers`` and the solved examples — also gets a gold copy
(``gold-<key>``), mixed into the work at the study's gold rate; a worker below the study's gold bar
(60 %) is excluded and their assignments rejected (``services.quality.gold_check``). A study on
MTurk or Prolific without solved examples or gold copies is refused at launch unless its
``allow_without_gold`` setting says to go on without them. The HIT names the feature but not its
rank among the class's features (the reference HIT shows no rank).

Outputs (after aggregation): ``feature_labels.csv`` and ``feature_panels.json`` (the label per
(class, feature), Salient ImageNet's crowd labels), ``salient_dataset.zip`` (§3.4: D(c, i) with
per-feature and combined masks), ``core_spurious_accuracy.csv``/``.png`` (§5.1, Fig. 6 top: core
and spurious accuracy vs σ per model), ``core_spurious_per_class.csv`` and
``class_core_accuracy_<model>.png`` (Fig. 6 bottom), ``accuracy_drop.png`` (Fig. 6 top: drop vs
standard accuracy), ``feature_sensitivity.csv`` and ``feature_sensitivity_<model>.png`` (Fig. 5,
σ = 0.25) and ``salient_summary.json`` (the results page).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from django import forms

from analysis.aggregation import ThresholdVote
from analysis.crowd_sim import noisy_choice
from analysis.exports import archive_bytes, safe_csv_bytes
from analysis.salient.masks import salient_dataset_files
from analysis.salient.reference_layout import reference_layout_files
from annotation.task_kinds import OutputFile, Progress, StudyContext, TaskKind, TaskSpec, register_task_kind, staged
from annotation.task_kinds.base import read_json
from annotation.task_kinds.benchmark import class_info, has_truth, heatmaps, model_inputs
from annotation.task_kinds.feature_panel_findings import FINDINGS, findings_outputs, panel_reasons
from annotation.task_kinds.fields import ChoiceField, IntField, TextField
from annotation.task_kinds.salient import SalientSettingsForm, study_evidence

MAIN_CHOICES = ("main_object", "separate_object", "background")
MAIN_LABELS = (
    "Part of the main object",
    "A separate object",
    "Background",
)
SPURIOUS_ANSWERS = ("separate_object", "background")
REASONS = {
    "main_object": "the highlighted region is on the garment itself",
    "separate_object": "the highlight sits on a separate thing next to or on top of the garment",
    "background": "the highlight covers the background around the garment",
}
#: What a solved example says about each answer (the HIT's instructions).
SOLVED_NOTES = {
    "main_object": "The red regions lie on the object of the class itself: part of the main object (core).",
    "separate_object": "The red regions lie on something that is not the object, e.g. a mark or another item: "
                       "a separate object (spurious).",
    "background": "The red regions lie around the object, on the background: background (spurious).",
}
#: Crowd sites whose feature-panel studies need solved examples and gold panels to launch.
CROWD_SITES = ("mturk", "prolific")
SUMMARY = "salient_summary.json"
PANELS = "feature_panels.json"
REFERENCE_LAYOUT = "salient_imagenet_layout.zip"


PANEL_KEY = re.compile(r"^c(\d+)-f(\d+)$")


class PanelAnswersField(forms.Field):
    """Panels with their answers: ``"c3-f412=background, c7-f88=main_object"``, or from JSON the same text,
    a list of ``key=answer`` strings or a ``{key: answer}`` object; cleaned to ``{key: answer}``."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("initial", dict)
        super().__init__(**kwargs)

    def to_python(self, value) -> dict[str, str]:
        if value in (None, "", [], {}):
            return {}
        if isinstance(value, str):
            value = [part for part in re.split(r"[,\n]", value) if part.strip()]
        if isinstance(value, dict):
            pairs = list(value.items())
        elif isinstance(value, (list, tuple)):
            pairs = []
            for item in value:
                key, sep, answer = str(item).partition("=")
                if not sep:
                    raise forms.ValidationError(f"{str(item).strip()!r} must look like c<class>-f<feature>=<answer>")
                pairs.append((key, answer))
        else:
            raise forms.ValidationError("give panels as c<class>-f<feature>=<answer>, separated by commas")
        answers = {}
        for key, answer in pairs:
            key, answer = str(key).strip(), str(answer).strip()
            if not PANEL_KEY.match(key):
                raise forms.ValidationError(f"{key!r} is not a panel key; a panel is c<class>-f<feature>, e.g. c3-f412")
            if answer not in MAIN_CHOICES:
                raise forms.ValidationError(f"the answer of {key} must be one of {', '.join(MAIN_CHOICES)}, "
                                            f"not {answer!r}")
            answers[key] = answer
        return answers

    def prepare_value(self, value):
        if isinstance(value, dict):
            return ", ".join(f"{k}={v}" for k, v in value.items())
        return value


class FeaturePanelSettingsForm(SalientSettingsForm):
    spurious_threshold = forms.IntegerField(
        min_value=1, max_value=50, required=False, initial=None,
        help_text="Spurious answers needed to label a feature spurious; empty = a strict majority of the "
                  "study's workers per task (the paper's 3 of 5).")
    gold_panels = forms.TypedChoiceField(
        choices=[("known", "a gold copy of every panel whose answer is known (the benchmark's truth, your gold "
                           "answers and solved examples)"),
                 ("none", "no gold copies")], required=False, initial="known", empty_value="known",
        help_text="Gold copies are mixed in at the study's gold rate; workers below its gold bar are not approved.")
    solved_examples = PanelAnswersField(
        help_text="Solved examples shown with their answers in every HIT (and mixed in as gold, as in the paper's "
                  "HIT): panel keys with answers, e.g. c3-f412=background, c7-f88=main_object. Empty on the "
                  "benchmark: one per answer from its truth.")
    gold_answers = PanelAnswersField(
        help_text="Further panels whose answer you know, e.g. c3-f17=separate_object: each gets a gold copy.")
    allow_without_gold = forms.BooleanField(
        required=False, initial=False,
        help_text="Launch on MTurk or Prolific without solved examples or gold panels (the paper's HIT always has "
                  "both; without this the launch is refused).")


def spurious_threshold(conf: Mapping[str, Any]) -> int:
    """The set threshold, or a strict majority of the study's workers per task."""
    if conf.get("spurious_threshold"):
        return int(conf["spurious_threshold"])
    return int(conf["workers_per_task"]) // 2 + 1


@register_task_kind
class FeaturePanel(TaskKind):
    name = "feature_panel"
    title = "Salient ImageNet: feature panel (core or spurious?)"
    template = "annotation/kinds/feature_panel.html"
    results_template = "annotation/kinds/feature_panel_results.html"
    label_field = "main"
    settings_form = FeaturePanelSettingsForm
    needs_conv_map = True
    default_gold_rate = 0.2

    def answer_fields(self, conf) -> list:
        return [
            ChoiceField("main", MAIN_CHOICES, MAIN_LABELS),
            TextField("reason", required=True, min_length=int(conf["reason_min_length"]), max_length=2000),
            IntField("confidence", 1, 5),
        ]

    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec]:
        # deferred: loads scikit-image, torch
        from analysis.salient.benchmark_inputs import example_indices, images_uint8, panel_truth

        bench, _, evidence = study_evidence(ctx, progress)
        truths = {p.key: panel_truth(bench, p.top, p.top_nams) for p in evidence.panels} if has_truth(bench) else {}
        given = {**ctx.conf["gold_answers"], **ctx.conf["solved_examples"]}
        unknown = sorted(set(given) - {p.key for p in evidence.panels})
        if unknown:
            shown = ", ".join(p.key for p in evidence.panels[:40])
            raise ValueError(f"solved_examples/gold_answers name panel(s) {', '.join(unknown)} that this study "
                             f"does not show; its panels: {shown}{' …' if len(evidence.panels) > 40 else ''}")
        known = {**truths, **given}  # the researcher's answers over the benchmark's truth
        solved = solved_examples(ctx, bench, evidence, ctx.conf["solved_examples"] or truths,
                                 chosen=bool(ctx.conf["solved_examples"]))
        examples = {}
        report = staged(progress, 0.9, 0.1)
        for done, panel in enumerate(evidence.panels):
            report(done, len(evidence.panels), "storing panel images")
            if panel.cls not in examples:
                shown = example_indices(bench, panel.cls) if has_truth(bench) else evidence.examples[panel.cls]
                examples[panel.cls] = ctx.store.images(images_uint8(bench, shown), kind="example")
            top = images_uint8(bench, panel.top)
            payload = {  # "rank" goes to the exports, not to the HIT page
                **class_info(bench, panel.cls), "cls": panel.cls, "feature": panel.feature,
                "rank": panel.rank + 1, "importance": panel.importance, "examples": examples[panel.cls],
                "images": ctx.store.images(top), "heatmaps": heatmaps(ctx, top, panel.top_nams),
                "attacks": ctx.store.images(panel.attacked, kind="feature_attack"), "solved": solved,
            }
            truth = {"main": truths[panel.key]} if panel.key in truths else None
            yield TaskSpec(key=panel.key, payload=payload, truth=truth)
            if panel.key in known and ctx.conf["gold_panels"] == "known":
                yield TaskSpec(key=f"gold-{panel.key}", payload=payload, truth={"main": known[panel.key]},
                               is_gold=True)

    def aggregator(self, conf: Mapping[str, Any]) -> ThresholdVote:
        return ThresholdVote(positive_values=SPURIOUS_ANSWERS, threshold=spurious_threshold(conf),
                             wanted=int(conf["workers_per_task"]), counts=MAIN_CHOICES)

    def simulate_answer(self, task, conf, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        truth = (task.truth or {}).get("main") or MAIN_CHOICES[int(rng.integers(3))]
        main = noisy_choice(truth, MAIN_CHOICES, accuracy, rng)
        return {"main": main, "reason": REASONS[main], "confidence": int(rng.integers(3, 6))}

    def launch_problem(self, conf, *, backend: str, gold_tasks: int, payload: Mapping[str, Any]) -> str:
        if backend not in CROWD_SITES or conf["allow_without_gold"]:
            return ""
        needed = (("solved examples", payload.get("solved")),
                  ("gold panels mixed in at a gold rate above 0", gold_tasks))
        missing = [what for what, present in needed if not present]
        if not missing:
            return ""
        return (f"a feature-panel study on {backend} needs {' and '.join(missing)}: the paper's HIT shows solved "
                "examples and approves a worker only with at least 60 % of its gold panels right (Salient ImageNet "
                "App. C). Name panels with their answers in the settings solved_examples and gold_answers, or set "
                "allow_without_gold to launch without them")

    def label_words(self, conf) -> dict[str, str]:
        """The majority label is Salient ImageNet's core/spurious (App. C); Dawid-Skene runs on the workers' three
        answers, which are worded with the core/spurious they stand for."""
        return {"core": "core", "spurious": "spurious",
                **{a: f"{'spurious' if a in SPURIOUS_ANSWERS else 'core'} ({w.lower()})"
                   for a, w in zip(MAIN_CHOICES, MAIN_LABELS)}}

    def expected_label(self, task) -> str | None:
        main = (task.truth or {}).get("main")
        return None if main is None else ("spurious" if main in SPURIOUS_ANSWERS else "core")

    def build_outputs(self, ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        return salient_outputs(ctx, labels, progress)

    def results_context(self, ctx: StudyContext) -> dict[str, Any]:
        panels = read_json(ctx, PANELS)
        return {"summary": panels, "accuracy": read_json(ctx, SUMMARY), "findings": read_json(ctx, FINDINGS)}


def solved_examples(ctx: StudyContext, bench, evidence, answers: Mapping[str, str],
                    chosen: bool = False) -> list[dict[str, Any]]:
    """The solved panels of the HIT's instructions (their heatmaps, the answer and why).

    ``chosen``: ``answers`` are the researcher's solved examples, shown in their order. Otherwise
    ``answers`` are known answers (the benchmark's truth) and one panel per answer is shown: the
    lowest-ranked feature of each answer, so the top features are not given away."""
    # deferred: loads scikit-image, torch
    from analysis.salient.benchmark_inputs import images_uint8

    by_key = {p.key: p for p in evidence.panels}
    if chosen:
        picked = [(by_key[key], answer) for key, answer in answers.items()]
    else:
        picked = []
        for answer in MAIN_CHOICES:
            panels = [p for p in evidence.panels if answers.get(p.key) == answer]
            if panels:
                picked.append((max(panels, key=lambda p: (p.rank, p.cls)), answer))
    solved = []
    for panel, answer in picked:
        solved.append({"answer": answer, "answer_label": MAIN_LABELS[MAIN_CHOICES.index(answer)],
                       "class_name": bench.class_names[panel.cls], "note": SOLVED_NOTES[answer],
                       "heatmaps": heatmaps(ctx, images_uint8(bench, panel.top), panel.top_nams)})
    return solved


def feature_labels_table(tasks: Mapping[int, Any], labels: pd.DataFrame) -> pd.DataFrame:
    """One row per (class, feature) task with its label (``core``/``spurious``/empty); gold copies left out."""
    rows = []
    for _, row in labels.iterrows():
        task = tasks.get(row["task"])
        if task is None or task.is_gold or "cls" not in task.payload:
            continue
        rows.append({"task_key": task.key, "class": task.payload["cls"], "class_name": task.payload["class_name"],
                     "feature": task.payload["feature"], "rank": task.payload["rank"],
                     "label": row["label"] or "", "tie": bool(row["tie"]), "complete": row["complete"],
                     "n_answers": row["n_answers"], **{c: row[c] for c in labels.columns if c.startswith("count_")}})
    return pd.DataFrame(rows, columns=["task_key", "class", "class_name", "feature", "rank", "label", "tie",
                                       "complete", "n_answers", *(c for c in labels.columns if c.startswith("count_"))])


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def salient_outputs(ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
    """The feature labels, the Salient dataset (§3.4) and its noise analysis (§5.1: Fig. 5 and 6) per model."""
    # deferred: loads torch
    from analysis.salient.dataset import build_salient_dataset

    # deferred: loads torch
    from analysis.salient.matched_noise import matched_drops

    # deferred: loads torch
    from analysis.salient.noise import (
        DEFAULT_SIGMAS,
        class_noise_curves,
        core_spurious_table,
        feature_sensitivity,
        overall_curves,
    )

    # deferred: loads matplotlib
    from analysis.salient.plots import (
        plot_accuracy_drop,
        plot_class_curves,
        plot_core_spurious,
        plot_feature_sensitivity,
    )

    tasks = {t.pk: t for t in ctx.tasks()}
    table = feature_labels_table(tasks, labels)
    by_key = {t.key: t.payload for t in tasks.values()}
    reasons = panel_reasons(ctx, tasks, table)
    answer_labels = dict(zip(MAIN_CHOICES, MAIN_LABELS))
    said = {key: [{**r, "answer_label": answer_labels.get(r["answer"], r["answer"])}
                  for r in group[["answer", "reason", "confidence"]].to_dict("records")]
            for key, group in reasons.groupby("task_key", sort=False)}
    panels = [{**row, **{view: by_key[row["task_key"]][view] for view in ("images", "heatmaps", "attacks")},
               "reasons": said.get(row["task_key"], [])} for row in table.to_dict("records")]
    files = [OutputFile("feature_labels.csv", safe_csv_bytes(table), "Label per (class, feature)"),
             OutputFile(PANELS, json.dumps({"panels": panels, "threshold": spurious_threshold(ctx.conf)},
                                           default=_plain).encode(), "Feature panels with their votes and labels")]
    if table.empty:
        return files  # answers imported from elsewhere: no evidence to build masks from
    found, findings = findings_outputs(table, reasons, answer_labels)
    files += [*found, OutputFile(FINDINGS, json.dumps(findings, default=_plain).encode(),
                                 "Spurious-feature statistics (Fig. 4) and reason words (App. F)")]
    c = ctx.conf
    flavours = list(dict.fromkeys([c["model"], *c["eval_models"]]))
    bench, handles, _ = model_inputs(ctx, flavours, staged(progress, 0.0, 0.3))
    evidence = study_evidence(ctx, staged(progress, 0.3, 0.1))[2]
    feature_labels: dict[int, dict[int, str]] = {}
    for row in table[table["label"].isin(["core", "spurious"])].to_dict("records"):
        feature_labels.setdefault(int(row["class"]), {})[int(row["feature"])] = row["label"]
    pools = {(p.cls, p.feature): p.pool for p in evidence.panels}
    train = bench.split("train")
    progress(450, 1000, "building the Salient dataset masks")
    ds = build_salient_dataset(handles[c["model"]], train.images, feature_labels, pools)
    samples = ds.samples(bench.class_names)
    if not samples:
        return files
    dataset = salient_dataset_files(samples, {s.index: train.images[s.index] for s in samples}, table)
    files.append(OutputFile("salient_dataset.zip", archive_bytes(dataset),
                            f"Salient dataset ({len(samples)} images, {len(ds.sets)} sets D(c, i))"))
    files.append(OutputFile(REFERENCE_LAYOUT, archive_bytes(reference_layout_files(ds, train.images,
                                                                                   bench.class_names)),
                            "Salient dataset in the reference code's layout (inspection_utils.SalientImageNet)"))
    overall, per_class, sensitivity, matched = {}, {}, {}, {}
    for i, flavour in enumerate(flavours):
        progress(500 + 450 * i // len(flavours), 1000, f"core/spurious accuracy of the {flavour} model")
        per_class[flavour] = class_noise_curves(handles[flavour], ds, train.images, sigmas=DEFAULT_SIGMAS)
        overall[flavour] = overall_curves(per_class[flavour])
        sensitivity[flavour] = feature_sensitivity(handles[flavour], ds, train.images)
        matched[flavour] = matched_drops(handles[flavour], ds, train.images, sensitivity[flavour])
        matched[flavour].insert(1, "class_name", [bench.class_names[c] for c in matched[flavour]["class"]])

    def combined(tables: Mapping[str, pd.DataFrame]) -> bytes:
        return safe_csv_bytes(pd.concat([t.assign(model=m) for m, t in tables.items()], ignore_index=True))

    names = bench.class_names
    files += [
        OutputFile("core_spurious_accuracy.csv", combined(overall),
                   "Core and spurious accuracy vs σ averaged over classes, with the drop vs standard accuracy "
                   "(Fig. 6) and the accuracy pooled over images"),
        OutputFile("core_spurious_accuracy.png", plot_core_spurious({m: core_spurious_table(t)
                                                                     for m, t in overall.items()}),
                   "Core vs spurious accuracy (Fig. 6)"),
        OutputFile("accuracy_drop.png", plot_accuracy_drop(overall), "Drop vs standard accuracy (Fig. 6, top)"),
        OutputFile("core_spurious_per_class.csv", combined(per_class), "Core and spurious accuracy per class"),
        OutputFile("feature_sensitivity.csv", combined(sensitivity),
                   "Accuracy drop per (class, feature) at σ = 0.25 (Fig. 5)"),
        OutputFile("matched_perturbation.csv", combined(matched),
                   "Core vs spurious feature drops at σ = 0.25 and at σ* of a matched mean perturbation (App. L)"),
    ]
    for flavour in flavours:
        files.append(OutputFile(f"class_core_accuracy_{_slug(flavour)}.png",
                                plot_class_curves(per_class[flavour], names),
                                f"Core accuracy per class, {flavour} model (Fig. 6, bottom)"))
        files.append(OutputFile(f"feature_sensitivity_{_slug(flavour)}.png",
                                plot_feature_sensitivity(sensitivity[flavour], names),
                                f"Single-feature sensitivity, {flavour} model (Fig. 5)"))
    summary = {"models": {m: {"overall": overall[m].to_dict("records"), "per_class": per_class[m].to_dict("records"),
                              "sensitivity": sensitivity[m].head(30).to_dict("records"),
                              "matched": matched[m].to_dict("records"),
                              "class_plot": f"class_core_accuracy_{_slug(m)}.png",
                              "sensitivity_plot": f"feature_sensitivity_{_slug(m)}.png"} for m in flavours},
               "class_names": list(names), "images": len(samples), "sets": len(ds.sets)}
    files.append(OutputFile(SUMMARY, json.dumps(summary, default=_plain).encode(), "Core/spurious accuracy summary"))
    progress(1000, 1000, "outputs ready")
    return files


def _plain(value):
    """JSON for numpy scalars."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
