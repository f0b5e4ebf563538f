"""``reconstruction_review`` (Haim et al. 2022; seed 000): do people see a planted trigger in recovered samples?

The evidence job trains the homogeneous ReLU MLP on a two-class Fashion-MNIST task once per
trigger level (simple patch, blended pattern, subtle pattern), reconstructs training samples
from its weights (the KKT objective) and scores them with SSIM. The best reconstructions of the
triggered side, and as controls those of the clean side, become tasks: "do you see a pattern that
is not part of the object? where?" (yes/no + a click). Majority vote of 5; the outputs say per
level how often the crowd found the trigger (said yes and clicked inside its region).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.aggregation import MajorityVote
from analysis.crowd_sim import noisy_choice
from annotation.errors import AnswerInvalid
from annotation.task_kinds import OutputFile, Progress, TaskKind, TaskSpec, register_task_kind
from annotation.task_kinds.fields import ChoiceField, PointField

PATTERN = ("yes", "no")
PATTERN_LABELS = ("Yes, I see such a pattern", "No")


@register_task_kind
class ReconstructionReview(TaskKind):
    name = "reconstruction_review"
    title = "Recovered samples: is there a pattern that is not part of the object?"
    template = "annotation/kinds/reconstruction_review.html"
    label_field = "pattern"
    has_outputs = True
    results_template = "annotation/kinds/reconstruction_review_results.html"

    def settings_form(self):
        from annotation.task_kinds.reconstruction_study import ReconstructionSettingsForm

        return ReconstructionSettingsForm

    def default_settings(self) -> dict[str, Any]:
        from annotation.task_kinds.reconstruction_study import DEFAULTS

        return dict(DEFAULTS)

    def answer_fields(self, task) -> list:
        return [ChoiceField("pattern", PATTERN, PATTERN_LABELS), PointField("location")]

    def validate_answer(self, payload: Mapping[str, Any], task) -> dict[str, Any]:
        cleaned = super().validate_answer(payload, task)
        if cleaned["pattern"] == "yes" and cleaned["location"] is None:
            raise AnswerInvalid({"location": "click on the pattern (or pick its region) when you answer yes"})
        if cleaned["pattern"] == "no":
            cleaned["location"] = None
        return cleaned

    def build_items(self, study, progress: Progress) -> Iterable[TaskSpec | OutputFile]:
        from annotation.task_kinds.reconstruction_study import reconstruction_evidence

        return reconstruction_evidence(study, progress)

    def aggregate(self, answers: pd.DataFrame, study_settings: Mapping[str, Any]) -> pd.DataFrame:
        return MajorityVote(min_votes=int(study_settings.get("workers_per_task", 5)), labels=PATTERN).fit(answers).table_

    def simulate_answer(self, task, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        truth = task.truth or {}
        pattern = noisy_choice(truth.get("pattern", "no"), PATTERN, accuracy, rng)
        if pattern == "no":
            return {"pattern": "no", "location": ""}
        x, y = truth.get("location") or rng.random(2).tolist()
        jitter = rng.normal(0, 0.04, 2)
        return {"pattern": "yes", "location": f"{np.clip(x + jitter[0], 0, 1):.4f},{np.clip(y + jitter[1], 0, 1):.4f}"}

    def build_outputs(self, study, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        from annotation.task_kinds.reconstruction_study import reconstruction_outputs

        return reconstruction_outputs(study, labels, progress)

    def results_context(self, study) -> dict[str, Any]:
        from annotation.task_kinds.reconstruction_study import results_context

        return results_context(study)
