"""``cluster_review`` (SpRAy, Anders et al.): the crowd says what a cluster of LRP heatmaps focuses on.

The evidence job runs SpRAy over the benchmark's classes (LRP heatmaps, spectral clustering,
Fisher score tau) and stores the class ranking and per-class plots as analysis results. For the
top-ranked classes each cluster becomes a task: its example images with their heatmaps and
"what do these heatmaps focus on?" (the object, a separate object, the background, an artifact
such as text or a watermark) plus a reason; majority vote. After aggregation, the clusters the
crowd calls an artifact go through the artifact tests; the un-Hans retrain is a job of its own.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from django import forms

from analysis.aggregation import MajorityVote
from analysis.crowd_sim import noisy_choice
from annotation.task_kinds import OutputFile, Progress, TaskKind, TaskSpec, register_task_kind
from annotation.task_kinds.fields import ChoiceField, TextField

FOCUS = ("object", "separate_object", "background", "artifact")
FOCUS_LABELS = (
    "The object itself",
    "A separate object",
    "The background",
    "An artifact (text, watermark, border)",
)
REASONS = {
    "object": "the red regions lie on the garment",
    "separate_object": "the red regions sit on a separate thing next to the garment",
    "background": "the red regions cover the background texture",
    "artifact": "the red regions sit on a small mark in the corner",
}


@register_task_kind
class ClusterReview(TaskKind):
    name = "cluster_review"
    title = "SpRAy: what does a cluster of heatmaps focus on?"
    template = "annotation/kinds/cluster_review.html"
    label_field = "focus"
    has_outputs = True
    results_template = "annotation/kinds/cluster_review_results.html"
    extra_jobs = {"unhans": "Retrain without a cluster's images (un-Hans)"}

    def settings_form(self):
        from annotation.task_kinds.spray_study import SpraySettingsForm

        return SpraySettingsForm

    def default_settings(self) -> dict[str, Any]:
        from annotation.task_kinds.spray_study import DEFAULTS

        return dict(DEFAULTS)

    def answer_fields(self, task) -> list:
        min_length = int(task.study.settings.get("reason_min_length", 5)) if task.study_id else 5
        return [ChoiceField("focus", FOCUS, FOCUS_LABELS),
                TextField("reason", required=True, min_length=min_length, max_length=2000)]

    def build_items(self, study, progress: Progress) -> Iterable[TaskSpec | OutputFile]:
        from annotation.task_kinds.spray_study import spray_evidence

        return spray_evidence(study, progress)

    def aggregate(self, answers: pd.DataFrame, study_settings: Mapping[str, Any]) -> pd.DataFrame:
        return MajorityVote(min_votes=int(study_settings.get("workers_per_task", 5)), labels=FOCUS).fit(answers).table_

    def simulate_answer(self, task, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        truth = (task.truth or {}).get("focus") or FOCUS[int(rng.integers(len(FOCUS)))]
        focus = noisy_choice(truth, FOCUS, accuracy, rng)
        return {"focus": focus, "reason": REASONS[focus]}

    def build_outputs(self, study, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        from annotation.task_kinds.spray_study import spray_outputs

        return spray_outputs(study, labels, progress)

    def results_context(self, study) -> dict[str, Any]:
        from annotation.task_kinds.spray_study import results_context

        return results_context(study)

    def job_form(self, name: str, study) -> type[forms.Form]:
        from annotation.task_kinds.spray_study import unhans_form

        return unhans_form(study)

    def run_job(self, name: str, study, params: Mapping[str, Any], progress: Progress) -> list[OutputFile]:
        from annotation.task_kinds.spray_study import run_unhans

        return run_unhans(study, params, progress)
