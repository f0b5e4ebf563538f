"""The SpRAy study as a ViRelAy project: a job that zips the project file, label map and HDF5 input,
attribution and analysis files (:mod:`analysis.spray.virelay`) so the study's heatmaps, embeddings and
clusterings open in ViRelAy (``virelay virelay/project.yaml`` after unzipping).

It reads what the evidence job stored (``spray_arrays.npz``: per class the images' split and index, the
pooled heatmaps SpRAy compared, the spectral embedding with its eigenvalues, UMAP, t-SNE and every
clustering), the images again from the dataset and the model's softmax output per image.
"""
from __future__ import annotations

import io
import re
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from django import forms

from annotation.task_kinds.base import KindJob, OutputFile, Progress, StudyContext, staged

EXPORT = "virelay_project.zip"
#: The folder inside the zip.
FOLDER = "virelay"
BATCH = 256
WNID = re.compile(r"n\d{8}")


def virelay_form(ctx: StudyContext) -> type[forms.Form]:
    """The export's one setting: the largest image side stored."""

    class VirelayForm(forms.Form):
        max_side = forms.IntegerField(
            min_value=8, max_value=512, initial=64,
            help_text="Images larger than this (side, px) are stored downscaled to it; ViRelAy stretches each "
                      "heatmap over its image.")

    return VirelayForm


def study_arrays(ctx: StudyContext):
    """The evidence job's ``spray_arrays.npz`` (a clear error when the study has none)."""
    # deferred: the task kind module stays light to import
    from annotation.task_kinds.cluster_review import ARRAYS

    data = ctx.read_output(ARRAYS)
    if data is None:
        raise ValueError(f"the study has no {ARRAYS}: compute its evidence (again) before exporting to ViRelAy")
    return np.load(io.BytesIO(data))


def export_categories(arrays, class_names, wnids) -> tuple[list[int], list]:
    """The analysed classes (in index order) and one :class:`analysis.spray.virelay.Category` each.

    Only clusterings every class has are exported (ViRelAy lists the first category's names): a class
    too small for some k leaves those k-means out of all."""
    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.virelay import Category, category_name

    classes = sorted(int(key.split("/")[0]) for key in arrays.files if key.endswith("/index"))
    if not classes:
        raise ValueError("the SpRAy arrays name no class")
    common = set.intersection(*({key.split("/", 2)[2] for key in arrays.files if key.startswith(f"{c}/cluster/")}
                                for c in classes))
    order = [key.split("/", 2)[2] for key in arrays.files if key.startswith(f"{classes[0]}/cluster/")]
    categories, start = [], 0
    for c in classes:
        n = len(arrays[f"{c}/index"])
        views = {"spectral": arrays[f"{c}/embedding"]}
        if f"{c}/umap" in arrays.files:
            views["umap"] = arrays[f"{c}/umap"]
        views["tsne"] = arrays[f"{c}/tsne"]
        clusterings = {name: arrays[f"{c}/cluster/{name}"] for name in order if name in common}
        categories.append(Category(name=category_name(c, wnids[c]), index=np.arange(start, start + n),
                                   embeddings=views, eigenvalues=arrays[f"{c}/eigenvalues"], clusterings=clusterings,
                                   k={name: int(name.rsplit("-", 1)[1]) for name in clusterings
                                      if name.startswith(("kmeans-", "agglomerative-"))}))
        start += n
    return classes, categories


def run_virelay(ctx: StudyContext, params: Mapping[str, Any], progress: Progress) -> list[OutputFile]:
    """Write the ViRelAy project of the study's SpRAy analysis and zip it."""
    # deferred: loads torch
    import torch

    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.benchmark_review import Pool

    # deferred: loads h5py, scikit-learn, scipy, torch
    from analysis.spray.virelay import write_project

    # deferred: the task kind module stays light to import
    from annotation.task_kinds.spray_jobs import spray_inputs

    arrays = study_arrays(ctx)
    bench, handle = spray_inputs(ctx, staged(progress, 0.0, 0.2))
    infos = getattr(bench, "class_infos", None)
    wnids = [info.folder if infos and WNID.fullmatch(str(getattr(info, "folder", ""))) else None
             for info in (infos or [None] * bench.num_classes)]
    classes, categories = export_categories(arrays, bench.class_names, wnids)
    pool = Pool(tuple(str(s) for s in arrays["splits"]),
                np.concatenate([arrays[f"{c}/split"] for c in classes]).astype(np.int64),
                np.concatenate([arrays[f"{c}/index"] for c in classes]).astype(np.int64))
    max_side = int(params.get("max_side") or 64)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(pool), BATCH):
            images, labels = pool.tensors(bench, np.arange(start, min(start + BATCH, len(pool))))
            yield images, labels

    def stored(images: torch.Tensor) -> np.ndarray:
        side = max(images.shape[2:])
        if side > max_side:
            size = [max(1, round(s * max_side / side)) for s in images.shape[2:]]
            images = torch.nn.functional.interpolate(images, size=size, mode="bilinear", antialias=True)
        return images.clamp(0, 1).numpy()

    predictions, labels = [], []
    report = staged(progress, 0.2, 0.4)
    with torch.no_grad():
        for i, (images, truth) in enumerate(batches()):
            report(i * BATCH, len(pool), "the model's output per image")
            predictions.append(torch.softmax(handle.logits(images.to(handle.device)), dim=1).cpu().numpy())
            labels.append(truth.numpy())
    progress(650, 1000, "writing the HDF5 files")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / FOLDER
        write_project(folder, name=f"SpRAy: {ctx.name}", model=str(ctx.conf["model"]),
                      dataset=str(ctx.conf.get("dataset", "benchmark")), class_names=bench.class_names, wnids=wnids,
                      images=(stored(images) for images, _ in batches()), labels=np.concatenate(labels),
                      attributions=np.concatenate([arrays[f"{c}/heatmaps"] for c in classes]),
                      predictions=np.concatenate(predictions), categories=categories)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.iterdir()):
                archive.write(path, f"{FOLDER}/{path.name}")
    progress(1000, 1000, "ViRelAy project ready")
    return [OutputFile(EXPORT, buffer.getvalue(), "ViRelAy project (unzip, then: virelay virelay/project.yaml)")]


JOBS = {"virelay": KindJob("Export as a ViRelAy project", virelay_form, run_virelay)}
