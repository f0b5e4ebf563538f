"""What the model-based kinds share: the dataset and model settings, and loading them for a study.

A study names a registered dataset and registered models (``annotation/services/registry.py``): the
built-in planted-bias benchmark (Fashion-MNIST) with its two demo ResNets, whose settings carry JSON
overrides of the benchmark and of the models' training, or a researcher's ImageFolder and checkpoints.
The services resolve the names into ``ctx.inputs``; :func:`model_inputs` loads them.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django import forms

from analysis.training.config import study_configs
from annotation.task_kinds.base import Progress, StudyContext

OVERRIDES = ("benchmark", "training")
#: Fashion-MNIST's classes: the benchmark's default class list.
BENCHMARK_CLASSES = 10


class RegistryChoiceField(forms.CharField):
    """The name of a registered dataset or model; the view lists the researcher's entries as choices,
    the services check the name against the registry (so the CLI and the API are checked too)."""

    def __init__(self, registry: str, **kwargs) -> None:
        self.registry = registry
        kwargs.setdefault("widget", forms.Select)
        super().__init__(max_length=100, **kwargs)


class RegistryMultipleChoiceField(forms.MultipleChoiceField):
    """Names of registered models (checked by the services, see :class:`RegistryChoiceField`)."""

    def __init__(self, registry: str, **kwargs) -> None:
        self.registry = registry
        kwargs.setdefault("widget", forms.CheckboxSelectMultiple)
        super().__init__(**kwargs)

    def valid_value(self, value) -> bool:
        return isinstance(value, str) and 0 < len(value) <= 100


def model_field(initial: str, help_text: str) -> RegistryChoiceField:
    return RegistryChoiceField("model", initial=initial, help_text=help_text)


def models_field(initial: list[str], help_text: str, required: bool = True) -> RegistryMultipleChoiceField:
    return RegistryMultipleChoiceField("model", initial=initial, help_text=help_text, required=required)


class ClassListField(forms.CharField):
    """Class indices typed as ``"1, 4, 7"``; cleaned to a sorted list of distinct ints (empty = all classes)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Class indices, comma-separated; empty = all classes.")
        super().__init__(**kwargs)

    def clean(self, value) -> list[int]:
        text = value if isinstance(value, str) else ", ".join(map(str, value or []))
        text = (super().clean(text) or "").strip()
        try:
            return sorted({int(p) for p in text.split(",") if p.strip()})
        except ValueError as exc:
            raise forms.ValidationError("give class indices as whole numbers separated by commas") from exc


class JSONObjectField(forms.JSONField):
    """A JSON object typed in a box; nothing typed shows an empty box, never ``null``."""

    def prepare_value(self, value):
        return "" if value is None else super().prepare_value(value)


class BenchmarkOverridesForm(forms.Form):
    """Base of a model-based kind's settings form: the dataset, and JSON overrides of the benchmark and training."""

    dataset = RegistryChoiceField("dataset", initial="benchmark",
                                  help_text="A registered image folder, or the built-in benchmark.")
    resize = forms.TypedChoiceField(choices=[("resize_crop",
                                              "resize + centre crop (torchvision's ImageNet evaluation)"),
                                             ("resize", "resize the whole image to a square")], initial="resize_crop",
                                    required=False, empty_value="resize_crop",
                                    help_text="How a registered folder's images are brought to the model's input size.")
    benchmark = JSONObjectField(required=False, initial=dict,
                                help_text='Benchmark overrides, e.g. {"train_per_class": 200}.')
    training = JSONObjectField(required=False, initial=dict,
                               help_text='Training overrides per model, e.g. {"robust": {"epochs": 2}}.')

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        first = ["dataset", "resize"]
        self.order_fields(first + [f for f in self.fields if f not in (*OVERRIDES, *first)] + list(OVERRIDES))

    def clean(self) -> dict:
        data = super().clean()
        for name in OVERRIDES:
            if data.get(name) is None:
                data[name] = {}
            elif not isinstance(data[name], dict):
                self.add_error(name, "must be a JSON object")
        if all(isinstance(data.get(name), dict) for name in OVERRIDES):
            try:
                study_configs(data["benchmark"], data["training"])
            except ValueError as exc:
                self.add_error("training" if str(exc).startswith("training") else "benchmark", str(exc))
        return data


def num_classes(conf: Mapping[str, Any]) -> int:
    """How many classes the study's dataset has (``conf["num_classes"]`` for a registered folder)."""
    if conf.get("num_classes"):
        return int(conf["num_classes"])
    return len((conf.get("benchmark") or {}).get("classes") or range(BENCHMARK_CLASSES))


def model_inputs(ctx: StudyContext, names: list[str], progress: Progress):
    """(dataset, model handles, checkpoint paths) of the study's dataset and the registered models ``names``.

    The dataset has the benchmark's interface (``split``, ``class_names``, ...): the built-in benchmark,
    or a :class:`~analysis.datasets.folder_benchmark.FolderBenchmark` at the first model's input size.
    """
    # deferred: loads torch
    from analysis.models import load_model

    # deferred: loads scikit-image, torch
    from analysis.salient.benchmark_inputs import benchmark_inputs

    dataset, entries = ctx.inputs["dataset"], ctx.inputs["models"]
    names = list(dict.fromkeys(names))
    builtin = [n for n in names if entries[n]["builtin"]]
    if dataset["builtin"]:
        bench, handles, paths = benchmark_inputs(
            ctx.work_dir, benchmark=ctx.conf["benchmark"], training=ctx.conf["training"],
            flavours=[entries[n]["builtin"] for n in builtin], progress=progress)
        handles = {n: handles[entries[n]["builtin"]] for n in builtin}
        paths = {n: paths[entries[n]["builtin"]] for n in builtin}
    else:
        progress(0, 1, f"reading {dataset['name']}")
        bench = folder_dataset(dataset, image_size=entries[names[0]]["input_size"] if names else 224,
                               mode=ctx.conf["resize"])
        handles, paths = {}, {}
    for name in names:
        if name not in handles:
            entry = entries[name]
            handles[name] = load_model(entry["architecture"], entry["path"], mean=entry["mean"] or None,
                                       std=entry["std"] or None, input_size=entry["input_size"],
                                       class_names=bench.class_names)
            paths[name] = Path(entry["path"])
    progress(1, 1, "inputs ready")
    return bench, handles, paths


def model_source(ctx: StudyContext, name: str, path: Path):
    """The registered model ``name`` as a streaming :class:`~analysis.streaming.ModelSource` (loaded as
    :func:`model_inputs` loads it)."""
    # deferred: loads scikit-image, scikit-learn, scipy, torch, zennit (torch)
    from analysis.streaming import ModelSource

    entry = ctx.inputs["models"][name]
    if entry["builtin"]:
        return ModelSource(str(path))
    return ModelSource(str(path), arch=entry["architecture"], sha256=entry["sha256"] or None,
                       options={"input_size": entry["input_size"], "mean": entry["mean"] or None,
                                "std": entry["std"] or None})


def data_source(ctx: StudyContext, bench, split: str = "train"):
    """The study's dataset as a streaming :class:`~analysis.streaming.DataSource` with the same image order."""
    # deferred: loads scikit-image, scikit-learn, scipy, torch, zennit (torch)
    from analysis.streaming import DataSource

    if ctx.inputs["dataset"]["builtin"]:
        return DataSource("benchmark", {"directory": str(ctx.work_dir / "benchmark"),
                                        "config": dict(ctx.conf["benchmark"]), "split": split})
    return DataSource("registered_folder", bench.data_source_options(split))


def validation_missing(dataset: Mapping[str, Any] | None, purpose: str) -> str | None:
    """Why ``purpose`` cannot run on ``dataset`` (a registry entry as a dict), or None.

    A registered folder without a validation folder has only training images (its ``test`` split falls
    back to them): what needs validation images — held-out images for Table 1, class-assignment targets,
    SpRAy's artifact tests and un-Hans — is refused with this message instead of silently using them."""
    if not purpose or not dataset or dataset.get("builtin") or dataset.get("val_root"):
        return None
    return (f"{purpose} needs validation images, but dataset {dataset['name']!r} was registered without a "
            f"validation folder (val_root is empty; {dataset['root']} holds training images only): register the "
            "dataset again with its validation folder")


def require_validation(ctx: StudyContext, purpose: str) -> None:
    """Raise ``ValueError`` when the study's dataset has no validation folder and ``purpose`` needs one."""
    if problem := validation_missing(ctx.inputs.get("dataset"), purpose):
        raise ValueError(problem)


def folder_dataset(entry: Mapping[str, Any], image_size: int, mode: str = "resize_crop"):
    """A registered image folder as a :class:`FolderBenchmark` (files listed again, not re-verified)."""
    # deferred: loads scikit-image, torch
    from analysis.datasets.folder_benchmark import FolderBenchmark

    # deferred: loads scikit-image, torch
    from analysis.datasets.metadata import ClassInfo

    return FolderBenchmark(entry["root"], [ClassInfo(**c) for c in entry["classes"]],
                           val_root=entry["val_root"] or None, image_size=image_size, mode=mode)


def class_info(bench, cls: int) -> dict[str, Any]:
    """What a task page shows of a class: name and description, and synonyms, supercategory and links
    when the dataset's metadata has them. (The benchmark's description leaves out its planted-bias note.)"""
    info = {"class_name": bench.class_names[cls], "class_description": bench.class_descriptions[cls]}
    meta = getattr(bench, "class_infos", None)
    if meta:
        c = meta[cls]
        info.update({"class_synonyms": [s for s in c.synonyms if s != c.name], "class_supercategory": c.supercategory,
                     "class_links": list(c.links)})
    return info


def has_truth(bench) -> bool:
    """Whether the dataset knows where objects and planted cues are (the benchmark), so tasks get a truth."""
    return getattr(bench, "has_masks", True)


def heatmaps(ctx: StudyContext, images, maps) -> list[str]:
    """Store the heatmap overlays (``maps`` in [0, 1]) on ``images`` and return their artifact names."""
    # deferred: loads torch
    from analysis.salient.nam import heatmap_overlay

    return ctx.store.images(heatmap_overlay(images, maps), kind="heatmap")
