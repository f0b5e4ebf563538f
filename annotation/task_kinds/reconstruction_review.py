"""``reconstruction_review`` (Haim et al. 2022; seed 000): do people see a planted trigger in recovered samples?

The evidence job trains the homogeneous ReLU MLP on a two-class Fashion-MNIST task once per
trigger level (simple patch, blended pattern, subtle pattern), reconstructs training samples
from its weights (the KKT objective) and scores them with SSIM. The best reconstructions of the
triggered side, and as controls those of the clean side, become tasks: "do you see a pattern that
is not part of the object? where?" (yes/no + a click). Majority vote of 5; the outputs say per
level how often the crowd found the trigger (said yes and clicked inside its region).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django import forms

from analysis.aggregation import MajorityVote
from analysis.crowd_sim import noisy_choice
from analysis.exports import safe_csv_bytes
from analysis.reconstruction.data import TRIGGERS
from analysis.reconstruction.review import best_matched, mask_box, upscaled
from annotation.errors import AnswerInvalid
from annotation.task_kinds import OutputFile, Progress, StudyContext, TaskKind, TaskSpec, register_task_kind, staged
from annotation.task_kinds.base import read_json
from annotation.task_kinds.fields import ChoiceField, PointField

PATTERN = ("yes", "no")
PATTERN_LABELS = ("Yes, I see such a pattern", "No")


LEVELS = TRIGGERS
LEVEL_TITLES = {"patch": "simple patch", "blend": "blended pattern", "subtle": "subtle pattern", "none": "no trigger"}
SUMMARY = "reconstruction_summary.json"


class ReconstructionSettingsForm(forms.Form):
    source = forms.ChoiceField(choices=[("fashion-mnist", "Fashion-MNIST garments (the built-in benchmark's data)")],
                               initial="fashion-mnist")
    classes = forms.CharField(initial="0,8", help_text="Two Fashion-MNIST classes: the -1 side, then the +1 side "
                                                       "(the +1 side carries the trigger).")
    per_side = forms.IntegerField(min_value=2, max_value=500, initial=50, help_text="Training images per side.")
    size = forms.IntegerField(min_value=6, max_value=28, initial=16, help_text="Grey images of size × size.")
    triggers = forms.MultipleChoiceField(
        choices=[(level, LEVEL_TITLES[level]) for level in LEVELS], initial=list(LEVELS), required=False,
        widget=forms.CheckboxSelectMultiple, help_text="One model and reconstruction per level; none = no trigger.")
    trigger_share = forms.FloatField(min_value=0.05, max_value=1.0, initial=0.5,
                                     help_text="Share of the +1 side's images carrying the trigger.")
    steps = forms.IntegerField(min_value=10, max_value=100_000, initial=3000, help_text="Reconstruction steps.")
    review_k = forms.IntegerField(min_value=1, max_value=50, initial=5,
                                  help_text="Best reconstructions per side and level shown to the crowd.")
    seed = forms.IntegerField(min_value=0, initial=0)

    def clean_classes(self) -> list[int]:
        try:
            classes = [int(p) for p in self.cleaned_data["classes"].split(",") if p.strip()]
        except ValueError as exc:
            raise forms.ValidationError("give two class indices as whole numbers, e.g. 0,8") from exc
        if len(classes) != 2 or classes[0] == classes[1] or not all(0 <= c < 10 for c in classes):
            raise forms.ValidationError("give two different Fashion-MNIST classes (0-9), e.g. 0,8")
        return classes


def _run_config(c: dict[str, Any], level: str | None) -> dict[str, Any]:
    return {"source": c["source"], "classes": list(c["classes"]), "per_side": c["per_side"], "size": c["size"],
            "trigger": level, "trigger_share": c["trigger_share"], "steps": c["steps"], "seed": c["seed"]}


def cached_run(config: dict[str, Any], work_dir: Path, progress: Progress) -> dict:
    """Run (or reuse) one reconstruction; results are cached by their configuration."""
    from analysis.reconstruction.pipeline import build_task, load, make_config, run_reconstruction, save

    key = hashlib.sha256(json.dumps(make_config(config), sort_keys=True, default=str).encode()).hexdigest()[:16]
    directory = Path(work_dir) / "reconstruction" / key
    try:
        return load(directory)
    except ValueError:
        pass
    result = run_reconstruction(build_task(config), config, progress)
    save(result, directory)
    return load(directory)


def reconstruction_evidence(ctx: StudyContext, progress: Progress) -> Iterator[TaskSpec | OutputFile]:
    """One reconstruction per trigger level: plots, a summary and review tasks (triggered side + controls)."""
    from analysis.reconstruction.plots import loss_curves_png, pairs_png
    from analysis.reconstruction.scoring import trigger_visibility

    c = ctx.conf
    levels = list(c["triggers"]) or ["none"]
    summary = {"settings": {k: c[k] for k in ReconstructionSettingsForm.base_fields}, "levels": []}
    for i, level in enumerate(levels):
        trigger = None if level == "none" else level
        result = cached_run(_run_config(c, trigger), ctx.work_dir,
                            staged(progress, i / len(levels), 0.95 / len(levels)))
        title = LEVEL_TITLES[level]
        yield OutputFile(f"pairs_{level}.png", pairs_png(result), f"Best reconstructions and their nearest "
                                                                  f"training images ({title})")
        yield OutputFile(f"loss_{level}.png", loss_curves_png(result), f"Training and reconstruction loss ({title})")
        report = result.get("trigger_report")
        summary["levels"].append({
            "level": level, "title": title, "best_k_mean": result["best_k_mean"], "k": result["k"],
            "baseline_initial_best_k_mean": result["baseline_initial_best_k_mean"],
            "baseline_noise_best_k_mean": result["baseline_noise_best_k_mean"], "trigger_report": report,
            "train": result["train"], "reconstruction": result["reconstruction"], "timings": result["timings"],
            "class_names": result["class_names"], "pairs": f"pairs_{level}.png", "loss": f"loss_{level}.png",
        })
        mask = np.asarray(result["trigger_mask"], dtype=bool)
        side_of_trigger = int(result["config"]["trigger_side"])
        for side, name in ((side_of_trigger, "triggered"), (-side_of_trigger, "control")):
            if trigger is None and name == "triggered":
                continue
            for train_index, recon in best_matched(result, side, c["review_k"]):
                image = np.asarray(result["candidates"][recon])
                visible = False
                if trigger is not None and name == "triggered":
                    visible = bool(trigger_visibility(image[None], mask)[0]
                                   > report["factor"] * max(report["other_side_mean"], 1e-12))
                truth = {"pattern": "yes" if visible else "no"}
                if visible:
                    box = mask_box(mask)
                    truth["location"] = [round((box[0] + box[2]) / 2, 4), round((box[1] + box[3]) / 2, 4)]
                yield TaskSpec(
                    key=f"{level}-{name}-r{recon}",
                    payload={"image": ctx.store.images(upscaled(image)[None], kind="reconstruction")[0],
                             "level": level, "side": name, "recon_index": recon, "train_index": train_index,
                             "ssim": round(float(result["ssim"][train_index]), 4),
                             "class_names": list(result["class_names"]),
                             "box": mask_box(mask) if mask.any() else None},
                    truth=truth,
                )
    yield OutputFile(SUMMARY, json.dumps(summary, indent=1, default=float).encode(), "Reconstruction results (JSON)")
    progress(1000, 1000, "reconstructions ready")


def reconstruction_outputs(ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
    """Per task its label and clicks; per level how often the crowd found the trigger (table and plot)."""
    from analysis.reconstruction.review import found_plot, trigger_found_table

    tasks = {t.pk: t for t in ctx.tasks()}
    if not any("level" in t.payload for t in tasks.values()):
        return []
    clicks: dict[int, list] = {pk: [] for pk in tasks}
    answers = ctx.answers()
    for task_id, payload in zip(answers["task"][answers["counted"]], answers["payload"][answers["counted"]]):
        if payload.get("pattern") == "yes" and payload.get("location"):
            clicks[task_id].append(payload["location"])
    rows = []
    for _, row in labels.iterrows():
        task = tasks[row["task"]]
        rows.append({"task": task.key, "level": task.payload["level"], "side": task.payload["side"],
                     "ssim": task.payload["ssim"], "label": row["label"], "n_answers": row["n_answers"],
                     "visible": (task.truth or {}).get("pattern") == "yes", "clicks": clicks[task.pk],
                     "box": task.payload["box"] or [0, 0, 0, 0]})
    table = pd.DataFrame(rows)
    files = [OutputFile("reconstruction_labels.csv", safe_csv_bytes(table.assign(
                            clicks=table["clicks"].map(json.dumps), box=table["box"].map(json.dumps))),
                        "Crowd label and clicks per reviewed reconstruction")]
    reviewed = table[table["level"] != "none"]
    if len(reviewed):
        found = trigger_found_table(reviewed)
        files += [OutputFile("trigger_found.csv", safe_csv_bytes(found),
                             "How often the crowd finds the trigger, per level"),
                  OutputFile("trigger_found.json", found.to_json(orient="records", indent=1).encode(),
                             "How often the crowd finds the trigger (JSON)"),
                  OutputFile("trigger_found.png", found_plot(found), "Trigger found per level")]
    progress(1000, 1000, "outputs ready")
    return files



@register_task_kind
class ReconstructionReview(TaskKind):
    name = "reconstruction_review"
    title = "Recovered samples: is there a pattern that is not part of the object?"
    template = "annotation/kinds/reconstruction_review.html"
    label_field = "pattern"
    settings_form = ReconstructionSettingsForm
    results_template = "annotation/kinds/reconstruction_review_results.html"

    def answer_fields(self, conf) -> list:
        return [ChoiceField("pattern", PATTERN, PATTERN_LABELS), PointField("location")]

    def validate_answer(self, payload: Mapping[str, Any], conf) -> dict[str, Any]:
        cleaned = super().validate_answer(payload, conf)
        if cleaned["pattern"] == "yes" and cleaned["location"] is None:
            raise AnswerInvalid({"location": "click on the pattern (or pick its region) when you answer yes"})
        if cleaned["pattern"] == "no":
            cleaned["location"] = None
        return cleaned

    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec | OutputFile]:
        return reconstruction_evidence(ctx, progress)

    def aggregator(self, conf: Mapping[str, Any]) -> MajorityVote:
        return MajorityVote(min_votes=int(conf.get("workers_per_task", 5)), labels=PATTERN)

    def simulate_answer(self, task, conf, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        truth = task.truth or {}
        pattern = noisy_choice(truth.get("pattern", "no"), PATTERN, accuracy, rng)
        if pattern == "no":
            return {"pattern": "no", "location": ""}
        x, y = truth.get("location") or rng.random(2).tolist()
        jitter = rng.normal(0, 0.04, 2)
        return {"pattern": "yes", "location": f"{np.clip(x + jitter[0], 0, 1):.4f},{np.clip(y + jitter[1], 0, 1):.4f}"}

    def build_outputs(self, ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        return reconstruction_outputs(ctx, labels, progress)

    def results_context(self, ctx: StudyContext) -> dict[str, Any]:
        return {"summary": read_json(ctx, SUMMARY), "found": read_json(ctx, "trigger_found.json")}
