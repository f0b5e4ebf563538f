"""What the two Salient ImageNet kinds share: their settings and the study's (cached) Salient evidence."""
from __future__ import annotations

import numpy as np
from django import forms

from annotation.task_kinds.base import Progress, StudyContext, staged
from annotation.task_kinds.benchmark import (
    BenchmarkOverridesForm,
    ClassListField,
    data_source,
    model_field,
    model_inputs,
    model_source,
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
    """The dataset, the studied model's handle and its Salient evidence.

    The features pass is streamed and sharded (``ctx.run_pass``), and so are the panels (NAMs, feature
    attacks) of the chosen (class, feature) pairs: a second fan-out over the evidence queue.
    """
    # deferred: loads scikit-image, scikit-learn, scipy, torch, zennit (torch)
    from analysis.streaming import PanelsSpec, PassSpec, assemble_evidence, class_examples, panel_jobs

    c = ctx.conf
    bench, handles, paths = model_inputs(ctx, [c["model"]], staged(progress, 0.0, 0.3))
    classes = c["classes"] or None
    if classes and max(classes) >= bench.num_classes:
        raise ValueError(f"class {max(classes)} does not exist; the dataset has {bench.num_classes} classes")
    spec = PassSpec(kind="salient", model=model_source(ctx, c["model"], paths[c["model"]]), data=data_source(ctx,
                                                                                                             bench),
                    params={"pool": max(c["pool"], c["k_images"])})
    stats = ctx.run_pass(spec, staged(progress, 0.3, 0.4))
    jobs = panel_jobs(stats, classes=classes, k_features=c["k_features"], k_images=c["k_images"], pool=c["pool"])
    panels = ctx.run_pass(PanelsSpec(source=spec, jobs=jobs, attack_steps=c["attack_steps"]),
                          staged(progress, 0.7, 0.2))
    settings = {"classes": classes, "k_features": c["k_features"], "k_images": c["k_images"], "pool": c["pool"],
                "attack_steps": c["attack_steps"]}
    evidence = assemble_evidence(stats, jobs, panels, settings=settings,
                                 examples=class_examples(np.asarray(bench.split("train").labels), bench.num_classes))
    return bench, handles[c["model"]], evidence
