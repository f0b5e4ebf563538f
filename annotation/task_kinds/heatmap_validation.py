"""``heatmap_validation`` (Salient ImageNet §3.2): do two sets of heatmaps focus on the same thing?

Set A = a feature's top-k images with heatmaps; set B = the k lowest-activating of its top-``pool``.
Answer: same / different / set A unclear / set B unclear (majority vote). Validates that NAMs
are consistent across a feature's activation range.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.aggregation import MajorityVote
from analysis.crowd_sim import noisy_choice
from annotation.task_kinds import Progress, TaskKind, TaskSpec, register_task_kind
from annotation.task_kinds import salient_common as common
from annotation.task_kinds.fields import ChoiceField, TextField

ANSWERS = ("same", "different", "a_unclear", "b_unclear")
ANSWER_LABELS = ("Same visual attribute", "Different attributes", "Set A is unclear", "Set B is unclear")


@register_task_kind
class HeatmapValidation(TaskKind):
    name = "heatmap_validation"
    title = "Salient ImageNet: heatmap validation (top vs bottom)"
    template = "annotation/kinds/heatmap_validation.html"
    label_field = "answer"

    def settings_form(self):
        return common.SalientSettingsForm

    def default_settings(self) -> dict[str, Any]:
        return dict(common.DEFAULTS)

    def answer_fields(self, task) -> list:
        return [ChoiceField("answer", ANSWERS, ANSWER_LABELS), TextField("reason", required=False, max_length=2000)]

    def build_items(self, study, progress: Progress) -> Iterable[TaskSpec]:
        from analysis.salient.benchmark_inputs import focus_of, images_uint8

        bench, _, evidence = common.study_evidence(study, progress)
        store = common.ImageStore()
        report = common.staged(progress, 0.9, 0.1)
        for done, panel in enumerate(evidence.panels):
            report(done, len(evidence.panels), "storing heatmaps")
            sets = {}
            for name, indices, nams in (("a", panel.top, panel.top_nams), ("b", panel.bottom, panel.bottom_nams)):
                images = images_uint8(bench, indices)
                sets[name] = [{"image": i, "heatmap": h}
                              for i, h in zip(store.images(images), store.heatmaps(images, nams))]
            same = focus_of(bench, panel.top, panel.top_nams) == focus_of(bench, panel.bottom, panel.bottom_nams)
            yield TaskSpec(
                key=panel.key,
                payload={**common.class_info(bench, panel.cls), "cls": panel.cls, "feature": panel.feature,
                         "set_a": sets["a"], "set_b": sets["b"]},
                truth={"answer": "same" if same else "different"},
            )

    def aggregate(self, answers: pd.DataFrame, study_settings: Mapping[str, Any]) -> pd.DataFrame:
        return MajorityVote(min_votes=int(study_settings.get("workers_per_task", 5)), labels=ANSWERS).fit(answers).table_

    def simulate_answer(self, task, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        truth = (task.truth or {}).get("answer", "same")
        return {"answer": noisy_choice(truth, ANSWERS[:2], accuracy, rng), "reason": ""}
