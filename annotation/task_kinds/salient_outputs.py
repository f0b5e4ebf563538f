"""Outputs of a feature-panel study: the Salient dataset and core/spurious accuracy per model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from analysis.exports import archive_bytes
from analysis.salient.masks import build_samples, salient_dataset_files
from analysis.salient.noise import DEFAULT_SIGMAS, core_spurious_accuracy, plot_core_spurious
from annotation.task_kinds import OutputFile, Progress
from annotation.task_kinds import salient_common as common


def feature_labels_table(study, labels: pd.DataFrame) -> pd.DataFrame:
    """One row per (class, feature) task with its label (``core``/``spurious``/empty)."""
    tasks = {t.pk: t for t in study.tasks.all()}
    rows = []
    for _, row in labels.iterrows():
        task = tasks[row["task"]]
        rows.append({"class": task.payload["cls"], "class_name": task.payload["class_name"],
                     "feature": task.payload["feature"], "rank": task.payload["rank"],
                     "label": row["label"], "complete": row["complete"], "n_answers": row["n_answers"],
                     **{c: row[c] for c in labels.columns if c.startswith("count_")}})
    return pd.DataFrame(rows)


def feature_panel_outputs(study, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
    if not study.tasks.filter(payload__has_key="cls").exists():
        return []  # answers imported from elsewhere: no evidence to build masks from
    c = common.conf(study)
    flavours = list(dict.fromkeys([c["model"], *c["eval_models"]]))
    bench, handles, _ = common.salient_inputs(study, common.staged(progress, 0.0, 0.3), flavours)
    evidence = common.study_evidence(study, common.staged(progress, 0.3, 0.1))[2]
    table = feature_labels_table(study, labels)
    decided = table[table["label"].isin(["core", "spurious"])]
    feature_labels: dict[int, dict[int, str]] = {}
    tops: dict[int, list[int]] = {}
    for _, row in decided.iterrows():
        feature_labels.setdefault(int(row["class"]), {})[int(row["feature"])] = row["label"]
        tops.setdefault(int(row["class"]), []).extend(evidence.panel(int(row["class"]), int(row["feature"])).top)
    train = bench.split("train")
    progress(450, 1000, "building the Salient dataset masks")
    samples = build_samples(handles[c["model"]], train.images, feature_labels,
                            {k: np.asarray(v) for k, v in tops.items()}, bench.class_names)
    files = [OutputFile("feature_labels.csv", table.to_csv(index=False).encode(), "Label per (class, feature)")]
    if not samples:
        return files
    dataset = salient_dataset_files(samples, {s.index: train.images[s.index] for s in samples}, table)
    files.append(OutputFile("salient_dataset.zip", archive_bytes(dataset), f"Salient dataset ({len(samples)} samples)"))

    images = torch.from_numpy(train.images[[s.index for s in samples]]).permute(0, 3, 1, 2).float() / 255
    ys = torch.as_tensor([int(train.labels[s.index]) for s in samples])
    core = torch.from_numpy(np.stack([s.core_mask for s in samples]))
    spurious = torch.from_numpy(np.stack([s.spurious_mask for s in samples]))
    tables = {}
    for i, flavour in enumerate(flavours):
        progress(500 + 450 * i // len(flavours), 1000, f"core/spurious accuracy of the {flavour} model")
        tables[flavour] = core_spurious_accuracy(handles[flavour], images, ys, core, spurious, sigmas=DEFAULT_SIGMAS)
    combined = pd.concat([t.assign(model=m) for m, t in tables.items()], ignore_index=True)
    files.append(OutputFile("core_spurious_accuracy.csv", combined.to_csv(index=False).encode(),
                            "Core and spurious accuracy under Gaussian noise"))
    files.append(OutputFile("core_spurious_accuracy.png", plot_core_spurious(tables), "Core vs spurious accuracy"))
    progress(1000, 1000, "outputs ready")
    return files
