"""``heatmap_validation`` (Salient ImageNet §3.2): do two sets of heatmaps focus on the same thing?

Set A = a feature's top-k images with heatmaps; set B = the k lowest-activating of its top-``pool``.
Answer: same / different / set A unclear / set B unclear (majority vote). Validates that NAMs
are consistent across a feature's activation range.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from analysis.aggregation import MajorityVote
from analysis.crowd_sim import noisy_choice
from annotation.task_kinds import Progress, StudyContext, TaskKind, TaskSpec, register_task_kind, staged
from annotation.task_kinds.benchmark import class_info, has_truth, heatmaps
from annotation.task_kinds.fields import ChoiceField, TextField
from annotation.task_kinds.salient import SalientSettingsForm, study_evidence

ANSWERS = ("same", "different", "a_unclear", "b_unclear")
ANSWER_LABELS = ("Same visual attribute", "Different attributes", "Set A is unclear", "Set B is unclear")


@register_task_kind
class HeatmapValidation(TaskKind):
    name = "heatmap_validation"
    title = "Salient ImageNet: heatmap validation (top vs bottom)"
    template = "annotation/kinds/heatmap_validation.html"
    label_field = "answer"

    settings_form = SalientSettingsForm
    needs_conv_map = True

    def answer_fields(self, conf) -> list:
        return [ChoiceField("answer", ANSWERS, ANSWER_LABELS), TextField("reason", required=False, max_length=2000)]

    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec]:
        from analysis.salient.benchmark_inputs import images_uint8

        bench, _, evidence = study_evidence(ctx, progress)
        report = staged(progress, 0.9, 0.1)
        for done, panel in enumerate(evidence.panels):
            report(done, len(evidence.panels), "storing heatmaps")
            sets = {}
            for name, indices, nams in (("a", panel.top, panel.top_nams), ("b", panel.bottom, panel.bottom_nams)):
                images = images_uint8(bench, indices)
                sets[name] = [{"image": i, "heatmap": h}
                              for i, h in zip(ctx.store.images(images), heatmaps(ctx, images, nams))]
            yield TaskSpec(
                key=panel.key,
                payload={**class_info(bench, panel.cls), "cls": panel.cls, "feature": panel.feature,
                         "set_a": sets["a"], "set_b": sets["b"]},
                truth=_truth(bench, panel) if has_truth(bench) else None,
            )

    def aggregator(self, conf: Mapping[str, Any]) -> MajorityVote:
        return MajorityVote(min_votes=int(conf.get("workers_per_task", 5)), labels=ANSWERS)

    def simulate_answer(self, task, conf, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        truth = (task.truth or {}).get("answer") or ANSWERS[int(rng.integers(2))]
        return {"answer": noisy_choice(truth, ANSWERS[:2], accuracy, rng), "reason": ""}


def _truth(bench, panel) -> dict[str, str]:
    """Same when the top and the bottom NAMs focus on the same planted region."""
    from analysis.salient.benchmark_inputs import focus_of

    same = focus_of(bench, panel.top, panel.top_nams) == focus_of(bench, panel.bottom, panel.bottom_nams)
    return {"answer": "same" if same else "different"}
