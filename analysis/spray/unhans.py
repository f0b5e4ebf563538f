"""Un-Hans: retrain without the artifact samples SpRAy found and compare (Anders et al.).

The model is retrained with the same :class:`~analysis.training.TrainConfig` as the
given one (standard training of :func:`analysis.training.train_model`) on the benchmark's
train split minus the excluded images; test and bias-flipped accuracy are reported
before (the given model) and after, overall and for the artifact class.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from analysis.training.trainer import TrainConfig, evaluate_benchmark, standard_config, train_model

Progress = Callable[[int, int, str], None]


def train_config_of(checkpoint: str | os.PathLike) -> TrainConfig:
    """The :class:`TrainConfig` recorded in a checkpoint written by the training pipeline."""
    from analysis.models.checkpoints import read_checkpoint

    recorded = read_checkpoint(checkpoint).metadata.get("train_config")
    if not recorded:
        raise ValueError(f"{checkpoint} records no training configuration")
    return TrainConfig(**recorded)


def _summary(metrics: Mapping[str, Any], class_name: str) -> dict:
    per_class = metrics["per_class"][class_name]
    return {"test_accuracy": metrics["test_accuracy"], "flipped_accuracy": metrics["flipped_accuracy"],
            "class_test_accuracy": per_class["test"], "class_flipped_accuracy": per_class["flipped"]}


def unhans_retrain(bench, exclude_train_indices, *, base_handle, base_config: TrainConfig | None = None,
                   train_config_overrides: Mapping[str, Any] | None = None, artifact_class: int | None = None,
                   progress: Progress | None = None, show_progress: bool = False) -> dict:
    """Retrain without the artifact samples and compare with the given model.

    Parameters
    ----------
    bench : PlantedBiasBenchmark
    exclude_train_indices : array-like of int
        Train-split images to leave out (e.g. a SpRAy cluster's ``indices``).
    base_handle : ModelHandle
        The model trained on everything ("before").
    base_config : TrainConfig, optional
        Its training configuration (see :func:`train_config_of`); default
        :func:`analysis.training.standard_config`.
    train_config_overrides : mapping, optional
        Changes to ``base_config`` (e.g. fewer epochs).  Retraining starts from random
        weights, so a warm-started configuration is refused.
    artifact_class : int, optional
        Class whose accuracies are reported separately; default the most common
        label among the excluded images.
    progress : callable, optional
        ``progress(done, total, message)`` from the training run.
    show_progress : bool
        tqdm bar on the terminal.

    Returns
    -------
    dict
        ``artifact_class``, ``class_name``, ``excluded`` (number of images left out),
        ``train_images`` (used for retraining), ``config`` (the retraining config),
        ``before`` / ``after`` (``test_accuracy``, ``flipped_accuracy``,
        ``class_test_accuracy``, ``class_flipped_accuracy``), ``delta`` (after - before
        of each), ``metrics_before`` / ``metrics_after`` (full
        :func:`~analysis.training.evaluate_benchmark` dicts) and ``model`` (the retrained
        :class:`~analysis.training.TrainingResult`, e.g. to save or explain it).
    """
    train = bench.split("train")
    excluded = np.unique(np.asarray(exclude_train_indices, dtype=np.int64).reshape(-1))
    if len(excluded) and (excluded[0] < 0 or excluded[-1] >= len(train)):
        raise ValueError(f"exclude_train_indices must lie in 0..{len(train) - 1}")
    keep = np.setdiff1d(np.arange(len(train)), excluded)
    if len(keep) == 0:
        raise ValueError("excluding every train image leaves nothing to train on")
    if artifact_class is None:
        if len(excluded) == 0:
            raise ValueError("give artifact_class when nothing is excluded")
        artifact_class = int(np.bincount(train.labels[excluded]).argmax())
    if not 0 <= artifact_class < bench.num_classes:
        raise ValueError(f"artifact_class must lie in 0..{bench.num_classes - 1}, got {artifact_class}")
    config = attrs.evolve(base_config or standard_config(), **dict(train_config_overrides or {}))
    if config.warm_start:
        raise ValueError("un-Hans retrains from random weights: use a configuration with warm_start=False")

    before = evaluate_benchmark(base_handle.module, bench)
    result = train_model(bench, config, progress=progress, show_progress=show_progress, train_indices=keep)
    after = result.metrics
    name = bench.class_names[artifact_class]
    b, a = _summary(before, name), _summary(after, name)
    return {
        "artifact_class": int(artifact_class), "class_name": name, "excluded": int(len(excluded)),
        "train_images": int(after["train_images"]), "config": attrs.asdict(config),
        "before": b, "after": a, "delta": {k: a[k] - b[k] for k in b},
        "metrics_before": before, "metrics_after": {k: v for k, v in after.items() if k != "history"},
        "model": result,
    }
