"""What the two Salient kinds share: settings, the benchmark inputs, cached evidence, image artifacts."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from django import forms
from django.conf import settings as django_settings

from analysis.salient.nam import heatmap_overlay
from annotation.task_kinds.benchmark_settings import BenchmarkOverridesForm, ClassListField

Progress = Callable[[int, int, str], None]

DEFAULTS: dict[str, Any] = {
    "dataset": "benchmark",
    "model": "robust",
    "eval_models": ["robust", "standard"],
    "classes": [],
    "k_features": 5,
    "k_images": 5,
    "pool": 65,
    "attack_steps": 100,
    "spurious_threshold": 3,
    "reason_min_length": 5,
    "benchmark": {},
    "training": {},
}
FLAVOURS = [("robust", "Robust (L2 PGD) demo ResNet"), ("standard", "Standard demo ResNet")]


class SalientSettingsForm(BenchmarkOverridesForm):
    dataset = forms.ChoiceField(choices=[("benchmark", "Built-in planted-bias benchmark (Fashion-MNIST)")])
    model = forms.ChoiceField(choices=FLAVOURS, initial="robust", help_text="The model whose features are studied.")
    eval_models = forms.MultipleChoiceField(choices=FLAVOURS, initial=["robust", "standard"], required=False,
                                            widget=forms.CheckboxSelectMultiple,
                                            help_text="Models whose core/spurious accuracy is measured.")
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


def conf(study) -> dict[str, Any]:
    return {**DEFAULTS, **study.settings}


def staged(progress: Progress, start: float, width: float) -> Progress:
    """Map a stage's (done, total) onto [start, start + width] of a 0..1000 bar."""

    def report(done: int, total: int, message: str = "") -> None:
        fraction = start + width * (done / total if total else 1.0)
        progress(min(1000, round(1000 * fraction)), 1000, message)

    return report


def work_dir() -> Path:
    return Path(django_settings.SALIENT_BENCHMARK_DIR)


def salient_inputs(study, progress: Progress, flavours: list[str] | None = None):
    """(benchmark, handles, checkpoint paths) for the study's dataset and models."""
    from analysis.salient.benchmark_inputs import benchmark_inputs

    c = conf(study)
    if c["dataset"] != "benchmark":
        raise ValueError(f"unknown dataset {c['dataset']!r}; this version supports the built-in 'benchmark'")
    flavours = flavours or [c["model"]]
    return benchmark_inputs(work_dir(), benchmark=c["benchmark"], training=c["training"], flavours=flavours,
                            progress=progress)


def study_evidence(study, progress: Progress):
    """The benchmark, the studied model's handle and its (cached) Salient evidence."""
    from analysis.salient.benchmark_inputs import cached_evidence

    c = conf(study)
    bench, handles, paths = salient_inputs(study, staged(progress, 0.0, 0.4))
    classes = c["classes"] or None
    if classes and max(classes) >= bench.num_classes:
        raise ValueError(f"class {max(classes)} does not exist; the dataset has {bench.num_classes} classes")
    evidence_settings = {"classes": classes, "k_features": c["k_features"], "k_images": c["k_images"],
                         "pool": c["pool"], "attack_steps": c["attack_steps"]}
    evidence = cached_evidence(work_dir() / "evidence", bench, handles[c["model"]], paths[c["model"]],
                               evidence_settings, staged(progress, 0.4, 0.5))
    return bench, handles[c["model"]], evidence


class ImageStore:
    """Stores PNGs as artifacts once per content and returns their names."""

    def __init__(self) -> None:
        from annotation.artifacts import artifact_store_image

        self._store = artifact_store_image

    def images(self, images: np.ndarray, kind: str = "image") -> list[str]:
        return [self._store(image=im, kind=kind).name for im in images]

    def heatmaps(self, images: np.ndarray, nams: np.ndarray) -> list[str]:
        return self.images(heatmap_overlay(images, nams), kind="heatmap")


def class_info(bench, cls: int) -> dict[str, str]:
    # The description shown to workers leaves out the planted-bias note of the class metadata.
    return {"class_name": bench.class_names[cls], "class_description": bench.class_descriptions[cls]}


