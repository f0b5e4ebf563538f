"""A SpRAy analysis as a ViRelAy project: project YAML, label map, HDF5 input, attribution and analysis files.

The layout is what ViRelAy's reader takes (``virelay/virelay`` at 4e87821, ``source/backend/virelay/model.py``):

* project file (``Project.__init__``, l. 72-126): ``project: {name, model, label_map, dataset: {name, type:
  hdf5, path, input_width, input_height, up_sampling_method, down_sampling_method}, attributions:
  {attribution_method, attribution_strategy, sources: [..]}, analyses: [{analysis_method, sources: [..]}]}``,
  paths relative to the project file.
* label map (``LabelMap.__init__``, l. 1130-1136): a JSON list of ``{index, word_net_id, name}``.
* input (``Hdf5Dataset``, l. 781-853): ``data`` float32 (samples, channel, height, width), ``label`` uint16
  (samples) — single-label (``Hdf5Dataset.__init__`` l. 781-784 reads a non-bool label as one index).
* attribution (``AttributionDatabase``, l. 348-425): ``attribution`` float32 (samples, channel, height,
  width), ``prediction`` float32 (samples, classes), ``label`` uint16 (samples); without an ``index``
  dataset row i is the attribution of input sample i (``has_attribution`` l. 371-377).
* analysis (``AnalysisDatabase``, l. 518-669): one group per category (``get_categories`` l. 534-541: its
  name is looked up in the label map as a WordNet id), each with ``index`` (uint32 rows of the
  attribution file), ``embedding/<name>`` (samples, dims) and ``cluster/<name>`` (samples) datasets;
  a spectral embedding carries its eigenvalues as the attribute ``eigenvalue`` (l. 653-654). Names and
  the other attributes as ViRelAy's ``docs/examples/meta_analysis.py`` writes them (l. 255-311): ``spectral``,
  ``tsne``/``umap`` with attributes ``embedding="spectral"`` and ``index=[0, 1]``, ``kmeans-05`` with
  ``embedding``, ``k`` and ``index`` (the eigenvector columns clustered).

ViRelAy lists the clusterings and embeddings of the first category only (``get_clustering_names`` l. 561), so
every category must carry the same names; :func:`write_project` refuses categories that differ.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs
import numpy as np

PROJECT_FILE = "project.yaml"
LABEL_MAP = "label-map.json"
INPUT = "dataset.input.h5"
ATTRIBUTION = "spray.attribution.h5"
ANALYSIS = "spray.analysis.h5"
FILES = (PROJECT_FILE, LABEL_MAP, INPUT, ATTRIBUTION, ANALYSIS)


@attrs.frozen
class Category:
    """One analysis category (a class): its rows in the attribution file, embeddings and clusterings.

    ``embeddings`` maps a name to (N, d) coordinates; ``eigenvalues`` are the spectral embedding's;
    ``clusterings`` maps a ViRelAy name (``kmeans-05`` …) to (N,) labels; ``k`` (optional) the k of a
    clustering.
    """

    name: str
    index: np.ndarray
    embeddings: Mapping[str, np.ndarray]
    eigenvalues: np.ndarray
    clusterings: Mapping[str, np.ndarray]
    k: Mapping[str, int] = attrs.field(factory=dict)


def category_name(cls: int, wnid: str | None = None) -> str:
    """The analysis group of class ``cls``: its WordNet id, else ``f"{cls:08d}"`` (``meta_analysis.py`` l. 252)."""
    return wnid or f"{int(cls):08d}"


def label_map(class_names: Sequence[str], wnids: Sequence[str | None] | None = None) -> list[dict]:
    """ViRelAy's label map: one ``{index, word_net_id, name}`` per class (``word_net_id``: :func:`category_name`)."""
    wnids = list(wnids or [None] * len(class_names))
    return [{"index": i, "word_net_id": category_name(i, w), "name": str(n)}
            for i, (n, w) in enumerate(zip(class_names, wnids))]


def project_yaml(name: str, model: str, dataset: str, width: int, height: int, attribution_method: str) -> str:
    """The project file (ViRelAy ``docs/source/contributors-guide/project-file-format.rst``); strings quoted as JSON."""
    q = json.dumps
    return "\n".join([
        "project:", f"  name: {q(name)}", f"  model: {q(model)}", f"  label_map: {LABEL_MAP}",
        "  dataset:", f"    name: {q(dataset)}", "    type: hdf5", f"    path: {INPUT}",
        f"    input_width: {int(width)}", f"    input_height: {int(height)}",
        "    up_sampling_method: none", "    down_sampling_method: none",
        "  attributions:", f"    attribution_method: {q(attribution_method)}", "    attribution_strategy: true_label",
        "    sources:", f"    - {ATTRIBUTION}",
        "  analyses:", "  - analysis_method: Spectral", "    sources:", f"    - {ANALYSIS}", ""])


def write_project(folder, *, name: str, model: str, dataset: str, class_names: Sequence[str],
                  wnids: Sequence[str | None] | None, images: np.ndarray | Iterable[np.ndarray], labels: np.ndarray,
                  attributions: np.ndarray, predictions: np.ndarray, categories: Sequence[Category],
                  attribution_method: str = "LRP (zennit EpsilonPlusFlat)") -> dict[str, Path]:
    """Write the five files of a ViRelAy project into ``folder``; returns their paths by name.

    Parameters
    ----------
    images : ndarray, shape (N, C, H, W), or an iterable of such chunks
        Model inputs in [0, 1] (ViRelAy's ``Sample`` rescales them to 0..255).
    labels : ndarray of int, shape (N,)
    attributions : ndarray, shape (N, H', W') or (N, 1, H', W')
        Relevance of the true class (ViRelAy resizes a heatmap to its image when overlaying it).
    predictions : ndarray, shape (N, classes)
        The model's output per sample.
    categories : sequence of Category
        One per analysed class; their ``index`` are rows of ``images``.
    """
    # deferred: loads h5py
    import h5py

    attributions = np.asarray(attributions, dtype=np.float32)
    if attributions.ndim == 3:
        attributions = attributions[:, None]
    labels = np.asarray(labels).reshape(-1)
    n = len(labels)
    if attributions.ndim != 4 or {len(attributions), len(predictions)} != {n}:
        raise ValueError(f"attributions {attributions.shape}, labels {labels.shape} and predictions "
                         f"{np.shape(predictions)} must describe the same samples")
    if not categories:
        raise ValueError("no analysis category to export")
    names = {(tuple(c.embeddings), tuple(c.clusterings)) for c in categories}
    if len(names) > 1:
        raise ValueError("every category needs the same embeddings and clusterings (ViRelAy lists the first one's)")
    for c in categories:
        index = np.asarray(c.index)
        if index.min(initial=0) < 0 or index.max(initial=0) >= n:
            raise ValueError(f"category {c.name!r} names rows outside the {n} samples")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {f: folder / f for f in FILES}
    with h5py.File(paths[INPUT], "w") as f:  # appended chunk by chunk, as ViRelAy's make_test_data.py does
        data, done = None, 0
        for chunk in ([images] if isinstance(images, np.ndarray) else images):
            chunk = np.asarray(chunk, dtype=np.float32)
            if chunk.ndim != 4:
                raise ValueError(f"images must be (N, C, H, W), got a chunk of shape {chunk.shape}")
            if data is None:
                data = f.create_dataset("data", shape=(0, *chunk.shape[1:]), maxshape=(None, *chunk.shape[1:]),
                                        dtype="float32", chunks=(1, *chunk.shape[1:]))
            data.resize(done + len(chunk), axis=0)
            data[done:] = chunk
            done += len(chunk)
        if data is None or done != n:
            f.close()
            paths[INPUT].unlink()
            raise ValueError(f"{done} images for {n} labels: images and labels must describe the same samples")
        f["label"] = labels.astype(np.uint16)
        height, width = data.shape[2:]
    paths[LABEL_MAP].write_text(json.dumps(label_map(class_names, wnids), indent=1))
    paths[PROJECT_FILE].write_text(project_yaml(name, model, dataset, width, height, attribution_method))
    with h5py.File(paths[ATTRIBUTION], "w") as f:
        f["attribution"] = attributions
        f["prediction"] = np.asarray(predictions, dtype=np.float32)
        f["label"] = labels.astype(np.uint16)
    with h5py.File(paths[ANALYSIS], "w") as f:
        for c in categories:
            group = f.require_group(c.name)
            group["index"] = np.asarray(c.index).astype(np.uint32)
            embedding = group.require_group("embedding")
            for i, (key, coords) in enumerate(c.embeddings.items()):
                embedding[key] = np.asarray(coords, dtype=np.float32)
                if i == 0:  # the spectral embedding, the others are computed from it
                    embedding[key].attrs["eigenvalue"] = np.asarray(c.eigenvalues, dtype=np.float32)
                else:
                    first = next(iter(c.embeddings))
                    embedding[key].attrs["embedding"] = first
                    embedding[key].attrs["index"] = np.arange(np.shape(c.embeddings[first])[1])
            cluster = group.require_group("cluster")
            spectral = next(iter(c.embeddings))
            for key, ids in c.clusterings.items():
                cluster[key] = np.asarray(ids, dtype=np.int64)
                cluster[key].attrs["embedding"] = spectral
                cluster[key].attrs["index"] = np.arange(np.shape(c.embeddings[spectral])[1])
                if key in c.k:
                    cluster[key].attrs["k"] = int(c.k[key])
    return paths
