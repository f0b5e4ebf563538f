"""What the two Salient ImageNet kinds share: their settings and the study's (cached) Salient evidence."""
from __future__ import annotations

from django import forms

from annotation.task_kinds.base import Progress, StudyContext, staged
from annotation.task_kinds.benchmark import (
    BenchmarkOverridesForm,
    ClassListField,
    model_field,
    model_inputs,
    models_field,
)


class SalientSettingsForm(BenchmarkOverridesForm):
    model = model_field("robust", "The model whose features are studied.")
    eval_models = models_field(["robust", "standard"], "Models whose core/spurious accuracy is measured.",
                               required=False)
    classes = ClassListField()
    k_features = forms.IntegerField(min_value=1, max_value=20, initial=5, help_text="Top features per class.")
    k_images = forms.IntegerField(min_value=1, max_value=10, initial=5, help_text="Images per feature.")
    pool = forms.IntegerField(min_value=2, max_value=500, initial=65, help_text="Set B: lowest k of the top-pool.")
    attack_steps = forms.IntegerField(min_value=0, max_value=500, initial=100)
    spurious_threshold = forms.IntegerField(min_value=1, max_value=50, initial=3,
                                            help_text="Spurious answers needed to label a feature spurious.")
    reason_min_length = forms.IntegerField(min_value=0, max_value=200, initial=5)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("k_images") and data.get("pool") and data["pool"] < data["k_images"]:
            self.add_error("pool", "the pool must hold at least k images")
        return data


def study_evidence(ctx: StudyContext, progress: Progress):
    """The benchmark, the studied model's handle and its (cached) Salient evidence."""
    from analysis.salient.benchmark_inputs import cached_evidence

    c = ctx.conf
    bench, handles, paths = model_inputs(ctx, [c["model"]], staged(progress, 0.0, 0.4))
    classes = c["classes"] or None
    if classes and max(classes) >= bench.num_classes:
        raise ValueError(f"class {max(classes)} does not exist; the dataset has {bench.num_classes} classes")
    evidence_settings = {"classes": classes, "k_features": c["k_features"], "k_images": c["k_images"],
                         "pool": c["pool"], "attack_steps": c["attack_steps"]}
    evidence = cached_evidence(ctx.work_dir / "evidence", bench, handles[c["model"]], paths[c["model"]],
                               evidence_settings, staged(progress, 0.4, 0.5))
    return bench, handles[c["model"]], evidence

