"""A recovered-sample study: reconstruct training images per trigger level, review them, report what people find."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from django import forms

from analysis.reconstruction.data import TRIGGERS
from annotation.task_kinds import OutputFile, Progress, TaskSpec
from annotation.task_kinds import salient_common as common

LEVELS = TRIGGERS
LEVEL_TITLES = {"patch": "simple patch", "blend": "blended pattern", "subtle": "subtle pattern", "none": "no trigger"}
DEFAULTS: dict[str, Any] = {
    "source": "fashion-mnist",
    "classes": [0, 8],
    "per_side": 50,
    "size": 16,
    "triggers": list(LEVELS),
    "trigger_share": 0.5,
    "steps": 3000,
    "review_k": 5,
    "seed": 0,
}
SUMMARY = "reconstruction_summary.json"
#: Shown reconstructions are scaled up to about this many pixels (nearest neighbour).
SHOWN_PIXELS = 160


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


def conf(study) -> dict[str, Any]:
    return {**DEFAULTS, **study.settings}


def _run_config(c: dict[str, Any], level: str | None) -> dict[str, Any]:
    return {"source": c["source"], "classes": list(c["classes"]), "per_side": c["per_side"], "size": c["size"],
            "trigger": level, "trigger_share": c["trigger_share"], "steps": c["steps"], "seed": c["seed"]}


def cached_run(config: dict[str, Any], progress: Progress) -> dict:
    """Run (or reuse) one reconstruction; results are cached by their configuration."""
    from analysis.reconstruction.pipeline import build_task, load, make_config, run_reconstruction, save

    key = hashlib.sha256(json.dumps(make_config(config), sort_keys=True, default=str).encode()).hexdigest()[:16]
    directory = common.work_dir() / "reconstruction" / key
    try:
        return load(directory)
    except ValueError:
        pass
    result = run_reconstruction(build_task(config), config, progress)
    save(result, directory)
    return load(directory)


def _box(mask: np.ndarray) -> list[float]:
    """The mask's bounding box as fractions of the side (x0, y0, x1, y1)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    side = mask.shape[0]
    return [cols[0] / side, rows[0] / side, (cols[-1] + 1) / side, (rows[-1] + 1) / side]


def _shown(image: np.ndarray) -> np.ndarray:
    """A [0, 1] grey reconstruction as an upscaled uint8 picture."""
    scale = max(1, SHOWN_PIXELS // image.shape[0])
    return np.kron((np.clip(image, 0, 1) * 255).round().astype(np.uint8), np.ones((scale, scale), np.uint8))


def _reviewed(result: dict, side: int, k: int) -> list[tuple[int, int]]:
    """(train index, reconstruction index) of the ``k`` best-matched training images of one side."""
    members = np.flatnonzero(np.asarray(result["train_labels"]) == side)
    best = members[np.argsort(-np.asarray(result["ssim"])[members], kind="stable")]
    seen, out = set(), []
    for i in best:
        r = int(result["nearest"][i])
        if r not in seen:
            seen.add(r)
            out.append((int(i), r))
        if len(out) == k:
            break
    return out


def reconstruction_evidence(study, progress: Progress) -> Iterator[TaskSpec | OutputFile]:
    """One reconstruction per trigger level: plots, a summary and review tasks (triggered side + controls)."""
    from analysis.reconstruction.plots import loss_curves_png, pairs_png
    from analysis.reconstruction.scoring import trigger_visibility

    c = conf(study)
    levels = list(c["triggers"]) or ["none"]
    store = common.ImageStore()
    summary = {"settings": {k: c[k] for k in DEFAULTS}, "levels": []}
    for i, level in enumerate(levels):
        trigger = None if level == "none" else level
        result = cached_run(_run_config(c, trigger), common.staged(progress, i / len(levels), 0.95 / len(levels)))
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
            for train_index, recon in _reviewed(result, side, c["review_k"]):
                image = np.asarray(result["candidates"][recon])
                visible = False
                if trigger is not None and name == "triggered":
                    visible = bool(trigger_visibility(image[None], mask)[0]
                                   > report["factor"] * max(report["other_side_mean"], 1e-12))
                truth = {"pattern": "yes" if visible else "no"}
                if visible:
                    box = _box(mask)
                    truth["location"] = [round((box[0] + box[2]) / 2, 4), round((box[1] + box[3]) / 2, 4)]
                yield TaskSpec(
                    key=f"{level}-{name}-r{recon}",
                    payload={"image": store.images(_shown(image)[None], kind="reconstruction")[0],
                             "level": level, "side": name, "recon_index": recon, "train_index": train_index,
                             "ssim": round(float(result["ssim"][train_index]), 4),
                             "class_names": list(result["class_names"]),
                             "box": _box(mask) if mask.any() else None},
                    truth=truth,
                )
    yield OutputFile(SUMMARY, json.dumps(summary, indent=1, default=float).encode(), "Reconstruction results (JSON)")
    progress(1000, 1000, "reconstructions ready")


def reconstruction_outputs(study, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
    """Per task its label and clicks; per level how often the crowd found the trigger (table and plot)."""
    from analysis.reconstruction.review import found_plot, trigger_found_table
    from annotation.models import Answer

    tasks = {t.pk: t for t in study.tasks.all()}
    if not any("level" in t.payload for t in tasks.values()):
        return []
    clicks: dict[int, list] = {pk: [] for pk in tasks}
    for task_id, payload in Answer.objects.filter(task__study=study, assignment__state__in=("submitted", "approved")
                                                  ).values_list("task_id", "payload"):
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
    files = [OutputFile("reconstruction_labels.csv", table.assign(clicks=table["clicks"].map(json.dumps),
                                                                  box=table["box"].map(json.dumps)
                                                                  ).to_csv(index=False).encode(),
                        "Crowd label and clicks per reviewed reconstruction")]
    reviewed = table[table["level"] != "none"]
    if len(reviewed):
        found = trigger_found_table(reviewed)
        files += [OutputFile("trigger_found.csv", found.to_csv(index=False).encode(),
                             "How often the crowd finds the trigger, per level"),
                  OutputFile("trigger_found.json", found.to_json(orient="records", indent=1).encode(),
                             "How often the crowd finds the trigger (JSON)"),
                  OutputFile("trigger_found.png", found_plot(found), "Trigger found per level")]
    progress(1000, 1000, "outputs ready")
    return files


def results_context(study) -> dict[str, Any]:
    from annotation.artifacts import artifact_read

    outputs = {o.name: o for o in study.outputs.select_related("artifact")}

    def read(name: str):
        return json.loads(artifact_read(outputs[name].artifact)) if name in outputs else None

    return {"summary": read(SUMMARY), "found": read("trigger_found.json")}
