"""``image_choice``: show 1..n images with a question and a fixed set of options.

The images are scikit-image's bundled photographs, or a sample of a registered image folder (a server
folder, an upload or an S3 prefix: ``dataset`` and ``max_images``), drawn evenly over its classes with a
fixed seed. The answer is one option, an optional free-text reason and a confidence from 1 to 5. Where an
image's class (folder or class name) is one of the options, it is the task's known answer (the simulated
crowd and gold use it).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from django import forms

from analysis.aggregation import MajorityVote
from analysis.crowd_sim import noisy_choice
from analysis.sample_images import SUBJECT_OPTIONS, SUBJECTS, load_file, load_sample
from annotation.task_kinds import Progress, StudyContext, TaskKind, TaskSpec, register_task_kind
from annotation.task_kinds.benchmark import RegistryChoiceField
from annotation.task_kinds.fields import ChoiceField, IntField, TextField

OPTION_VALUE = r"^[a-z0-9_]+$"
BUILTIN_BENCHMARK = "benchmark"  # the planted-bias benchmark is generated arrays, not image files


def parse_options(text: str) -> list[list[str]]:
    """``"cat:A cat, dog"`` -> ``[["cat", "A cat"], ["dog", "dog"]]``; raises ``ValueError``."""
    options: list[list[str]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        value, _, label = part.partition(":")
        value = value.strip()
        if not value or not all(c.isalnum() or c == "_" for c in value) or value != value.lower():
            raise ValueError(f"option value {value!r} must be lower-case letters, digits or _")
        options.append([value, label.strip() or value])
    values = [v for v, _ in options]
    if len(values) < 2:
        raise ValueError("give at least two options, separated by commas")
    if len(set(values)) != len(values):
        raise ValueError("option values must be distinct")
    return options


class ImageChoiceSettingsForm(forms.Form):
    question = forms.CharField(max_length=300, initial="What is the main subject of this image?")
    options = forms.CharField(
        max_length=1000,
        initial=", ".join(f"{o}:{o.capitalize()}" for o in SUBJECT_OPTIONS),
        help_text="Comma-separated; each 'value' or 'value:Label'.",
    )
    images = forms.MultipleChoiceField(
        choices=[(n, f"{n} ({s})") for n, s in SUBJECTS.items()],
        initial=list(SUBJECTS),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="scikit-image's bundled images; the known subject lets the simulated crowd answer.",
    )
    dataset = RegistryChoiceField("dataset", required=False, initial="",
                                  help_text="Or one of your registered image folders (uploaded on the Models and "
                                            "datasets page): a sample of its images replaces the bundled ones.")
    max_images = forms.IntegerField(min_value=1, max_value=2000, initial=24, required=False,
                                    help_text="With a dataset: how many of its images, evenly over its classes.")
    images_per_task = forms.IntegerField(min_value=1, max_value=6, initial=1)
    image_size = forms.IntegerField(min_value=32, max_value=1024, initial=256)

    def clean_options(self) -> list[list[str]]:
        try:
            return parse_options(self.cleaned_data["options"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict:
        data = super().clean()
        if "max_images" in data and data["max_images"] is None:  # left out (clients of before): the default
            data["max_images"] = self.fields["max_images"].initial
        if data.get("dataset") == BUILTIN_BENCHMARK:
            self.add_error("dataset", "the built-in benchmark has no image files: pick a registered image folder")
        elif not data.get("dataset") and not data.get("images"):
            self.add_error("images", "pick at least one bundled image, or a registered dataset")
        return data


@register_task_kind
class ImageChoice(TaskKind):
    name = "image_choice"
    title = "Image choice"
    template = "annotation/kinds/image_choice.html"
    label_field = "choice"
    results_template = "annotation/kinds/image_choice_results.html"

    settings_form = ImageChoiceSettingsForm

    def answer_fields(self, conf) -> list:
        options = conf["options"]
        return [
            ChoiceField("choice", tuple(v for v, _ in options), tuple(label for _, label in options)),
            TextField("reason", required=False, max_length=2000),
            IntField("confidence", 1, 5),
        ]

    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec]:
        if ctx.inputs.get("dataset"):
            yield from self._dataset_tasks(ctx, progress)
            return
        conf = ctx.conf
        names = list(conf["images"])
        per = int(conf["images_per_task"])
        groups = [names[i : i + per] for i in range(0, len(names), per)]
        values = [v for v, _ in conf["options"]]
        for done, group in enumerate(groups):
            progress(done, len(groups), f"storing images {', '.join(group)}")
            shas = ctx.store.images([load_sample(n, int(conf["image_size"])) for n in group])
            subjects = {SUBJECTS.get(n) for n in group}
            truth = None
            if len(subjects) == 1 and (subject := subjects.pop()) in values:
                truth = {"choice": subject}
            yield TaskSpec(
                key="img-" + "+".join(group),
                payload={"images": shas, "question": conf["question"], "options": conf["options"]},
                truth=truth,
            )
        progress(len(groups), len(groups), "images stored")

    def _dataset_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec]:
        """Tasks over a seeded sample of the registered folder's images (round robin over its classes)."""
        # deferred: loads scikit-image, torch
        from analysis.datasets.folder_benchmark import scan_image_folder

        # deferred: loads scikit-image, torch
        from analysis.datasets.metadata import ClassInfo

        conf, entry = ctx.conf, ctx.inputs["dataset"]
        if entry["builtin"]:
            raise ValueError("the built-in benchmark has no image files: pick a registered image folder")
        classes = [ClassInfo(**c) for c in entry["classes"]]
        progress(0, 1, f"listing {entry['name']}")
        scan = scan_image_folder(entry["root"], classes, verify=False)
        rng = np.random.default_rng(int(conf.get("seed", 0)))
        queues = [[(c, name) for name in rng.permutation(scan.files[c.folder])] for c in classes]
        picked = [queue[i] for i in range(max(map(len, queues))) for queue in queues if i < len(queue)]
        picked = picked[: int(conf["max_images"])]
        values = [v for v, _ in conf["options"]]
        per = int(conf["images_per_task"])
        groups = [picked[i : i + per] for i in range(0, len(picked), per)]
        for done, group in enumerate(groups):
            progress(done, len(groups), f"storing {len(group)} image(s) of {entry['name']}")
            shas = ctx.store.images([load_file(Path(entry["root"]) / name, int(conf["image_size"]))
                                     for _, name in group])
            answers = {_class_answer(c, values) for c, _ in group}
            truth = {"choice": answers.pop()} if len(answers) == 1 and None not in answers else None
            first = group[0]
            yield TaskSpec(
                key=f"img-{_slug(first[0].name)}-{done}",
                payload={"images": shas, "question": conf["question"], "options": conf["options"],
                         "files": [name for _, name in group]},
                truth=truth,
            )
        progress(len(groups), len(groups), "images stored")

    def aggregator(self, conf: Mapping[str, Any]) -> MajorityVote:
        return MajorityVote(min_votes=int(conf["workers_per_task"]), labels=[v for v, _ in conf["options"]])

    def simulate_answer(self, task, conf, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        values = [v for v, _ in conf["options"]]
        if task.truth is None:
            choice = values[int(rng.integers(len(values)))]
        else:
            choice = noisy_choice(task.truth["choice"], values, accuracy, rng)
        return {"choice": choice, "reason": f"it looks like {choice}", "confidence": int(rng.integers(3, 6))}

    def results_context(self, ctx: StudyContext) -> dict[str, Any]:
        """Per option: the tasks the majority gave it and its share of the counted answers; the ties (no label).
        Nothing before the study is aggregated."""
        labels = ctx.labels()
        if not labels:
            return {"summary": None}
        answers = ctx.answers()
        counted = [p.get(self.label_field) for p, ok in zip(answers["payload"], answers["counted"]) if ok]
        options = [tuple(o) for o in ctx.conf["options"]]
        rows = [{"value": v, "word": w, "tasks": sum(1 for label in labels.values() if label == v),
                 "answers": counted.count(v),
                 "answer_percent": round(100 * counted.count(v) / len(counted)) if counted else 0}
                for v, w in options]
        return {"summary": {"tasks": len(labels), "ties": sum(1 for label in labels.values() if not label),
                            "answers": len(counted), "options": rows}}


def _class_answer(info, values: list[str]) -> str | None:
    """The option a class stands for: its folder or name (lower-cased, spaces as ``_``) when it is an option."""
    for label in (info.folder, info.name):
        value = str(label).strip().lower().replace(" ", "_")
        if value in values:
            return value
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))[:60] or "image"
