"""``heatmap_validation`` (Salient ImageNet §3.2, App. D): do two sets of heatmaps focus on the same thing?

Set A = the top-k images *labelled* as the class by the feature's activation, set B = the k lowest of
its top-``pool`` (D(c, i)); each set shows the images and their NAM heatmaps. Answer: same / different
/ set A unclear / set B unclear (majority vote), a required reason and a confidence 1-5. A feature
whose answer is "same" is validated: its label generalises to D(c, i).

Which features: by default those labelled **spurious** (App. D) by the feature-panel study named in
``labels_from`` (a study of the same researcher with aggregated labels; ``ctx.inputs["labels_from"]``);
``features = all`` or no ``labels_from`` validates every feature.

Outputs: ``validation.csv``/``.json`` (answer shares per feature and overall, the share validated and,
on the benchmark, the agreement of the crowd's label with the planted truth).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from django import forms

from analysis.aggregation import MajorityVote
from analysis.crowd_sim import noisy_choice
from analysis.exports import safe_csv_bytes
from annotation.task_kinds import OutputFile, Progress, StudyContext, TaskKind, TaskSpec, register_task_kind, staged
from annotation.task_kinds.base import read_json
from annotation.task_kinds.benchmark import class_info, has_truth, heatmaps
from annotation.task_kinds.fields import ChoiceField, IntField, TextField
from annotation.task_kinds.salient import SalientSettingsForm, study_evidence

ANSWERS = ("same", "different", "a_unclear", "b_unclear")
ANSWER_LABELS = ("Same visual attribute", "Different attributes", "Set A is unclear", "Set B is unclear")
REASONS = {"same": "the red regions cover the same kind of thing in both sets",
           "different": "set A highlights one thing, set B another",
           "a_unclear": "the red regions of set A are scattered", "b_unclear": "the red regions of set B are scattered"}
SUMMARY = "validation.json"


class HeatmapValidationSettingsForm(SalientSettingsForm):
    spurious_threshold = None  # labels come from the feature-panel study
    features = forms.TypedChoiceField(
        choices=[("spurious", "features labelled spurious (App. D)"), ("all", "all top features")],
        initial="spurious", required=False, empty_value="spurious", help_text="Which features to validate.")
    labels_from = forms.CharField(
        max_length=200, required=False, initial="",
        help_text="Name of your feature-panel study (aggregated) whose labels choose the features; "
                  "empty = every feature.")


def chosen_keys(ctx: StudyContext) -> set[str] | None:
    """Panel keys to validate, or None for all; a named study without labels is refused."""
    name = (ctx.conf.get("labels_from") or "").strip()
    if ctx.conf["features"] == "all" or not name:
        return None
    linked = ctx.inputs.get("labels_from")
    if not linked:
        raise ValueError(f"no study named {name!r} among your studies")
    if linked["kind"] != "feature_panel":
        raise ValueError(f"study {name!r} is a {linked['kind']} study, not a feature_panel study")
    if not linked["labels"]:
        raise ValueError(f"study {name!r} has no labels yet: aggregate its answers first")
    return {key for key, label in linked["labels"].items() if label == "spurious"}


@register_task_kind
class HeatmapValidation(TaskKind):
    name = "heatmap_validation"
    title = "Salient ImageNet: heatmap validation (top vs bottom)"
    template = "annotation/kinds/heatmap_validation.html"
    results_template = "annotation/kinds/heatmap_validation_results.html"
    label_field = "answer"

    settings_form = HeatmapValidationSettingsForm
    needs_conv_map = True

    def answer_fields(self, conf) -> list:
        return [ChoiceField("answer", ANSWERS, ANSWER_LABELS),
                TextField("reason", required=True, min_length=int(conf["reason_min_length"]), max_length=2000),
                IntField("confidence", 1, 5)]

    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec]:
        # deferred: loads scikit-image, torch
        from analysis.salient.benchmark_inputs import images_uint8

        keys = chosen_keys(ctx)
        bench, _, evidence = study_evidence(ctx, progress)
        panels = [p for p in evidence.panels if keys is None or p.key in keys]
        if not panels:
            raise ValueError(f"study {ctx.conf['labels_from']!r} labelled no feature of these classes spurious: "
                             "nothing to validate (choose all features)")
        report = staged(progress, 0.9, 0.1)
        for done, panel in enumerate(panels):
            report(done, len(panels), "storing heatmaps")
            sets = {}
            for name, indices, nams in (("a", panel.label_top, panel.label_top_nams),
                                        ("b", panel.bottom, panel.bottom_nams)):
                images = images_uint8(bench, indices)
                sets[name] = [{"image": i, "heatmap": h}
                              for i, h in zip(ctx.store.images(images), heatmaps(ctx, images, nams))]
            yield TaskSpec(
                key=panel.key,
                payload={**class_info(bench, panel.cls), "cls": panel.cls, "feature": panel.feature,
                         "rank": panel.rank + 1, "set_a": sets["a"], "set_b": sets["b"]},
                truth=_truth(bench, panel) if has_truth(bench) else None,
            )

    def aggregator(self, conf: Mapping[str, Any]) -> MajorityVote:
        return MajorityVote(min_votes=int(conf["workers_per_task"]), labels=ANSWERS)

    def simulate_answer(self, task, conf, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        truth = (task.truth or {}).get("answer") or ANSWERS[int(rng.integers(2))]
        answer = noisy_choice(truth, ANSWERS[:2], accuracy, rng)
        return {"answer": answer, "reason": REASONS[answer], "confidence": int(rng.integers(3, 6))}

    def build_outputs(self, ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        tasks = {t.pk: t for t in ctx.tasks()}
        table = validation_table(tasks, labels)
        summary = validation_summary(table)
        progress(1, 1, "outputs ready")
        return [OutputFile("validation.csv", safe_csv_bytes(table),
                           "Answer counts and label per feature (App. D)"),
                OutputFile(SUMMARY, json.dumps({"summary": summary, "features": table.to_dict("records")},
                                               default=str).encode(), "Heatmap validation agreement")]

    def results_context(self, ctx: StudyContext) -> dict[str, Any]:
        data = read_json(ctx, SUMMARY) or {}
        return {"summary": data.get("summary"), "features": data.get("features", [])}


def validation_table(tasks: Mapping[int, Any], labels: pd.DataFrame) -> pd.DataFrame:
    """One row per validated feature: its answer counts, label and (on the benchmark) the truth."""
    rows = []
    for row in labels.to_dict("records"):
        task = tasks.get(row["task"])
        if task is None or task.is_gold or "set_a" not in task.payload:
            continue
        rows.append({"task_key": task.key, "class": task.payload["cls"], "class_name": task.payload["class_name"],
                     "feature": task.payload["feature"], "label": row["label"] or "", "tie": bool(row["tie"]),
                     "n_answers": int(row["n_answers"]), **{a: int(row.get(f"count_{a}", 0) or 0) for a in ANSWERS},
                     "truth": (task.truth or {}).get("answer", "")})
    return pd.DataFrame(rows, columns=["task_key", "class", "class_name", "feature", "label", "tie", "n_answers",
                                       *ANSWERS, "truth"])


def validation_summary(table: pd.DataFrame) -> dict[str, Any] | None:
    """Shares of the answers over all votes, features validated ("same"), and agreement with the truth."""
    if table.empty:
        return None
    votes = int(table[list(ANSWERS)].to_numpy().sum())
    decided = table[table["label"] != ""]
    known = decided[decided["truth"] != ""]
    return {
        "features": len(table), "decided": len(decided), "votes": votes,
        "answer_percent": {a: round(100 * int(table[a].sum()) / max(votes, 1), 2) for a in ANSWERS},
        "validated": int((decided["label"] == "same").sum()),
        "validated_percent": round(100 * float((decided["label"] == "same").mean()), 2) if len(decided) else None,
        "ties": int(table["tie"].sum()),
        "truth_agreement_percent": round(100 * float((known["label"] == known["truth"]).mean()), 2)
        if len(known) else None,
    }


def _truth(bench, panel) -> dict[str, str]:
    """Same when set A's and set B's NAMs focus on the same region (object, cue or rest)."""
    # deferred: loads scikit-image, torch
    from analysis.salient.benchmark_inputs import focus_of

    same = focus_of(bench, panel.label_top, panel.label_top_nams) == focus_of(bench, panel.bottom, panel.bottom_nams)
    return {"answer": "same" if same else "different"}
