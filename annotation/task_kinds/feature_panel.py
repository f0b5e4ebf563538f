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

from analysis.aggregation import ThresholdVote
from analysis.aggregation.counts import answer_counts
from analysis.crowd_sim import noisy_choice
from annotation.task_kinds import OutputFile, Progress, TaskKind, TaskSpec, register_task_kind
from annotation.task_kinds.fields import ChoiceField, IntField, TextField
from annotation.task_kinds import salient_common as common

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
    has_outputs = True

    def settings_form(self):
        return common.SalientSettingsForm

    def default_settings(self) -> dict[str, Any]:
        return dict(common.DEFAULTS)

    def answer_fields(self, task) -> list:
        min_length = int(task.study.settings.get("reason_min_length", 5)) if task.study_id else 5
        return [
            ChoiceField("main", MAIN_CHOICES, MAIN_LABELS),
            TextField("reason", required=True, min_length=min_length, max_length=2000),
            IntField("confidence", 1, 5),
        ]

    def build_items(self, study, progress: Progress) -> Iterable[TaskSpec]:
        from analysis.salient.benchmark_inputs import images_uint8, panel_truth

        bench, _, evidence = common.study_evidence(study, progress)
        store = common.ImageStore()
        examples = {}
        report = common.staged(progress, 0.9, 0.1)
        for done, panel in enumerate(evidence.panels):
            report(done, len(evidence.panels), "storing panel images")
            if panel.cls not in examples:
                examples[panel.cls] = store.images(images_uint8(bench, evidence.examples[panel.cls]))
            top = images_uint8(bench, panel.top)
            yield TaskSpec(
                key=panel.key,
                payload={
                    **common.class_info(bench, panel.cls), "cls": panel.cls, "feature": panel.feature,
                    "rank": panel.rank + 1, "importance": panel.importance, "examples": examples[panel.cls],
                    "images": store.images(top), "heatmaps": store.heatmaps(top, panel.top_nams),
                    "attacks": store.images(panel.attacked, kind="feature_attack"),
                },
                truth={"main": panel_truth(bench, panel.top, panel.top_nams)},
            )

    def aggregate(self, answers: pd.DataFrame, study_settings: Mapping[str, Any]) -> pd.DataFrame:
        vote = ThresholdVote(
            positive_values=SPURIOUS_ANSWERS, threshold=int(study_settings.get("spurious_threshold", 3)),
            wanted=int(study_settings.get("workers_per_task", 5)),
        ).fit(answers)
        return vote.table_.join(answer_counts(answers, MAIN_CHOICES), how="left")

    def simulate_answer(self, task, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        truth = (task.truth or {}).get("main") or MAIN_CHOICES[int(rng.integers(3))]
        main = noisy_choice(truth, MAIN_CHOICES, accuracy, rng)
        return {"main": main, "reason": REASONS[main], "confidence": int(rng.integers(3, 6))}

    def expected_label(self, task) -> str | None:
        main = (task.truth or {}).get("main")
        return None if main is None else ("spurious" if main in SPURIOUS_ANSWERS else "core")

    def build_outputs(self, study, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        from annotation.task_kinds.salient_outputs import feature_panel_outputs

        return feature_panel_outputs(study, labels, progress)
