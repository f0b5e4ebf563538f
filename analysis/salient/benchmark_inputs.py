"""The built-in benchmark and its trained models as inputs of a Salient study, cached on disk.

``benchmark_inputs`` generates or loads the planted-bias benchmark and trains or reuses the
requested model flavours; ``cached_evidence`` computes the Salient evidence once per
(benchmark, checkpoint, settings) and reuses the stored file on a re-run.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.datasets.benchmark import BIAS_KINDS, PlantedBiasBenchmark
from analysis.models import ModelHandle, load_model
from analysis.salient.evidence import SalientEvidence, compute_salient_evidence
from analysis.salient.ground_truth import feature_truth, focus_region
from analysis.training.pipeline import build_benchmark_and_models
from analysis.training.config import CONFIG_FACTORIES, study_configs

Progress = Callable[[int, int, str], None]
#: Bumped whenever what the evidence holds changes, so a stored file of an older version is not reused.
EVIDENCE_VERSION = 2


def benchmark_inputs(
    work_dir: Path, *, benchmark: Mapping[str, Any] | None = None, training: Mapping[str, Mapping] | None = None,
    flavours: Sequence[str] = ("robust",), progress: Progress | None = None,
) -> tuple[PlantedBiasBenchmark, dict[str, ModelHandle], dict[str, Path]]:
    """The benchmark, a handle per flavour, and the checkpoint path per flavour."""
    unknown = set(flavours) - set(CONFIG_FACTORIES)
    if unknown:
        raise ValueError(f"unknown model flavour(s) {sorted(unknown)}; use {', '.join(CONFIG_FACTORIES)}")
    benchmark_config, every = study_configs(benchmark, training)
    configs = {f: every[f] for f in flavours}
    if "robust" in configs and configs["robust"].warm_start and "standard" not in configs:
        # The robust model is fine-tuned from the standard one, which must exist first.
        configs = {"standard": every["standard"], **configs}
    elif "robust" in configs and "standard" in configs:
        configs = {"standard": configs["standard"], "robust": configs["robust"]}
    result = build_benchmark_and_models(
        work_dir, progress=progress, reuse=True, benchmark_config=benchmark_config,
        train_configs=configs, show_progress=False,
    )
    bench = PlantedBiasBenchmark.load(result.benchmark_path)
    handles = {f: load_model(None, result.models[f].checkpoint_path) for f in flavours}
    paths = {f: result.models[f].checkpoint_path for f in flavours}
    return bench, handles, paths


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached_evidence(
    cache_dir: Path, bench: PlantedBiasBenchmark, handle: ModelHandle, checkpoint: Path, settings: Mapping[str, Any],
    progress: Progress | None = None,
) -> SalientEvidence:
    """Salient evidence on the benchmark's train split, computed once per inputs and settings."""
    key = hashlib.sha256(json.dumps(
        {"bench": bench.config.fingerprint(), "model": _file_sha(checkpoint), "version": EVIDENCE_VERSION,
         **settings}, sort_keys=True
    ).encode()).hexdigest()[:16]
    path = cache_dir / f"salient-evidence-{key}.npz"
    if path.is_file():
        if progress:
            progress(1, 1, f"reused evidence {path.name}")
        return SalientEvidence.load(path)
    images, labels = bench.split("train").tensors()
    evidence = compute_salient_evidence(handle, images, labels, progress=progress or (lambda *a: None), **settings)
    evidence.save(path)
    return evidence


def majority_cue(kinds: np.ndarray) -> str | None:
    """The planted cue (of per-image cue kinds, -1 = none) more than half of the images carry, if any."""
    values, counts = np.unique(np.asarray(kinds), return_counts=True)
    best = values[counts.argmax()]
    return BIAS_KINDS[best] if best >= 0 and counts.max() * 2 > len(kinds) else None


def panel_cue_kind(bench: PlantedBiasBenchmark, indices: np.ndarray) -> str | None:
    """The planted cue most of these train images carry, if most carry one."""
    return majority_cue(bench.split("train").bias_kinds[indices])


def panel_truth(bench: PlantedBiasBenchmark, indices: np.ndarray, nams: np.ndarray) -> str:
    """Ground-truth feature-panel answer of NAMs on these train images (object vs cue vs rest)."""
    train = bench.split("train")
    return feature_truth(nams, train.object_masks[indices], train.bias_masks[indices], panel_cue_kind(bench, indices))


def focus_of(bench: PlantedBiasBenchmark, indices: np.ndarray, nams: np.ndarray) -> str:
    """Which region (object, cue, rest) these NAMs focus on."""
    train = bench.split("train")
    focus = focus_region(nams, train.object_masks[indices], train.bias_masks[indices])
    return max(focus, key=focus.get)


def images_uint8(bench: PlantedBiasBenchmark, indices: np.ndarray) -> np.ndarray:
    return bench.split("train").images[np.asarray(indices)]


def example_indices(bench, cls: int, n: int = 3) -> np.ndarray:
    """``n`` train images of class ``cls`` that carry no planted cue (a class example must not show the
    answer); the first images of the class when fewer are clean."""
    train = bench.split("train")
    of_class = train.labels == cls
    pick = np.flatnonzero(of_class & (np.asarray(train.bias_kinds) < 0))[:n]
    return pick if len(pick) >= n else np.flatnonzero(of_class)[:n]
