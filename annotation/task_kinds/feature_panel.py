"""``feature_panel`` (Salient ImageNet §3.1): is this neural feature core or spurious for the class?

A task shows the class (name, description, 3 examples) and, for one of its top features, the
top-k images, their NAM heatmaps and feature-attack images. Answer: ``main`` (main object /
separate object / background), a required reason and a confidence 1-5. Spurious when at least
``spurious_threshold`` answers say separate object or background.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from analysis.aggregation import ThresholdVote
from analysis.crowd_sim import noisy_choice
from analysis.exports import archive_bytes
from analysis.salient.masks import build_samples, salient_dataset_files
from analysis.salient.noise import DEFAULT_SIGMAS, core_spurious_accuracy, plot_core_spurious
from annotation.task_kinds import OutputFile, Progress, StudyContext, TaskKind, TaskSpec, register_task_kind, staged
from annotation.task_kinds.benchmark import class_info, has_truth, heatmaps, model_inputs
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


@register_task_kind
class FeaturePanel(TaskKind):
    name = "feature_panel"
    title = "Salient ImageNet: feature panel (core or spurious?)"
    template = "annotation/kinds/feature_panel.html"
    label_field = "main"
    settings_form = SalientSettingsForm
    needs_conv_map = True

    def answer_fields(self, conf) -> list:
        return [
            ChoiceField("main", MAIN_CHOICES, MAIN_LABELS),
            TextField("reason", required=True, min_length=int(conf["reason_min_length"]), max_length=2000),
            IntField("confidence", 1, 5),
        ]

    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec]:
        from analysis.salient.benchmark_inputs import images_uint8, panel_truth

        bench, _, evidence = study_evidence(ctx, progress)
        examples = {}
        report = staged(progress, 0.9, 0.1)
        for done, panel in enumerate(evidence.panels):
            report(done, len(evidence.panels), "storing panel images")
            if panel.cls not in examples:
                examples[panel.cls] = ctx.store.images(images_uint8(bench, evidence.examples[panel.cls]))
            top = images_uint8(bench, panel.top)
            yield TaskSpec(
                key=panel.key,
                payload={
                    **class_info(bench, panel.cls), "cls": panel.cls, "feature": panel.feature,
                    "rank": panel.rank + 1, "importance": panel.importance, "examples": examples[panel.cls],
                    "images": ctx.store.images(top), "heatmaps": heatmaps(ctx, top, panel.top_nams),
                    "attacks": ctx.store.images(panel.attacked, kind="feature_attack"),
                },
                truth={"main": panel_truth(bench, panel.top, panel.top_nams)} if has_truth(bench) else None,
            )

    def aggregator(self, conf: Mapping[str, Any]) -> ThresholdVote:
        return ThresholdVote(positive_values=SPURIOUS_ANSWERS, threshold=int(conf["spurious_threshold"]),
                             wanted=int(conf.get("workers_per_task", 5)), counts=MAIN_CHOICES)

    def simulate_answer(self, task, conf, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        truth = (task.truth or {}).get("main") or MAIN_CHOICES[int(rng.integers(3))]
        main = noisy_choice(truth, MAIN_CHOICES, accuracy, rng)
        return {"main": main, "reason": REASONS[main], "confidence": int(rng.integers(3, 6))}

    def expected_label(self, task) -> str | None:
        main = (task.truth or {}).get("main")
        return None if main is None else ("spurious" if main in SPURIOUS_ANSWERS else "core")

    def build_outputs(self, ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        """The feature labels, the Salient dataset and core/spurious accuracy per model."""
        tasks = {t.pk: t for t in ctx.tasks()}
        if not any("cls" in t.payload for t in tasks.values()):
            return []  # answers imported from elsewhere: no evidence to build masks from
        c = ctx.conf
        flavours = list(dict.fromkeys([c["model"], *c["eval_models"]]))
        bench, handles, _ = model_inputs(ctx, flavours, staged(progress, 0.0, 0.3))
        evidence = study_evidence(ctx, staged(progress, 0.3, 0.1))[2]
        table = feature_labels_table(tasks, labels)
        decided = table[table["label"].isin(["core", "spurious"])]
        feature_labels: dict[int, dict[int, str]] = {}
        tops: dict[int, list[int]] = {}
        for _, row in decided.iterrows():
            feature_labels.setdefault(int(row["class"]), {})[int(row["feature"])] = row["label"]
            tops.setdefault(int(row["class"]), []).extend(evidence.panel(int(row["class"]), int(row["feature"])).top)
        train = bench.split("train")
        progress(450, 1000, "building the Salient dataset masks")
        samples = build_samples(handles[c["model"]], train.images, feature_labels,
                                {k: np.asarray(v) for k, v in tops.items()}, bench.class_names)
        files = [OutputFile("feature_labels.csv", table.to_csv(index=False).encode(), "Label per (class, feature)")]
        if not samples:
            return files
        dataset = salient_dataset_files(samples, {s.index: train.images[s.index] for s in samples}, table)
        files.append(OutputFile("salient_dataset.zip", archive_bytes(dataset),
                                f"Salient dataset ({len(samples)} samples)"))
        images = torch.from_numpy(train.images[[s.index for s in samples]]).permute(0, 3, 1, 2).float() / 255
        ys = torch.as_tensor([int(train.labels[s.index]) for s in samples])
        core = torch.from_numpy(np.stack([s.core_mask for s in samples]))
        spurious = torch.from_numpy(np.stack([s.spurious_mask for s in samples]))
        tables = {}
        for i, flavour in enumerate(flavours):
            progress(500 + 450 * i // len(flavours), 1000, f"core/spurious accuracy of the {flavour} model")
            tables[flavour] = core_spurious_accuracy(handles[flavour], images, ys, core, spurious,
                                                     sigmas=DEFAULT_SIGMAS)
        combined = pd.concat([t.assign(model=m) for m, t in tables.items()], ignore_index=True)
        files.append(OutputFile("core_spurious_accuracy.csv", combined.to_csv(index=False).encode(),
                                "Core and spurious accuracy under Gaussian noise"))
        files.append(OutputFile("core_spurious_accuracy.png", plot_core_spurious(tables), "Core vs spurious accuracy"))
        progress(1000, 1000, "outputs ready")
        return files


def feature_labels_table(tasks: Mapping[int, Any], labels: pd.DataFrame) -> pd.DataFrame:
    """One row per (class, feature) task with its label (``core``/``spurious``/empty)."""
    rows = []
    for _, row in labels.iterrows():
        task = tasks[row["task"]]
        rows.append({"class": task.payload["cls"], "class_name": task.payload["class_name"],
                     "feature": task.payload["feature"], "rank": task.payload["rank"],
                     "label": row["label"], "complete": row["complete"], "n_answers": row["n_answers"],
                     **{c: row[c] for c in labels.columns if c.startswith("count_")}})
    return pd.DataFrame(rows)
