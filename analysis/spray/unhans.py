"""Un-Hans (Anders et al.): the paper's fine-tuning experiment, and a retrain without the artifact samples.

:func:`unhans_table2` is §3.3: fine-tune the trained model on subset A (the affected class and
four others: chosen at random as in the paper, or the classes most confused with it) and on subset
B (A with the isolated artifact pasted onto every training image that lacks it), then compare clean
and artifact-added validation accuracy (Table 2) and the LRP heatmaps of a fixed sample over the epochs.

:func:`unhans_retrain` is the blunter alternative: the model is retrained with the same
:class:`~analysis.training.TrainConfig` as the given one (standard training of
:func:`analysis.training.train_model`) on the benchmark's train split minus the excluded images;
test and bias-flipped accuracy are reported before (the given model) and after, overall and for the
artifact class.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np
import torch

from analysis.models.checkpoints import read_checkpoint
from analysis.models.handle import ModelHandle
from analysis.training.config import TrainConfig, standard_config
from analysis.training.trainer import evaluate_benchmark, train_model

from .artifacts import paste_artifact

Progress = Callable[[int, int, str], None]


def train_config_of(checkpoint: str | os.PathLike) -> TrainConfig:
    """The :class:`TrainConfig` recorded in a checkpoint written by the training pipeline."""

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


# -- un-Hans as Anders et al. §3.3 (Table 2) ----------------------------------------------------------
@torch.no_grad()
def confusion_counts(handle, images, labels, *, batch_size: int = 256) -> np.ndarray:
    """Confusion matrix ``C[true, predicted]`` (counts) of the handle's top prediction."""
    x = torch.as_tensor(images, dtype=torch.float32)
    y = np.asarray(labels).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    predicted = torch.cat([handle.logits(x[s:s + batch_size]).argmax(dim=1).cpu()
                           for s in range(0, len(x), batch_size)]).numpy()
    counts = np.zeros((handle.num_classes, handle.num_classes), dtype=np.int64)
    np.add.at(counts, (y, predicted), 1)
    return counts


def nearest_by_confusion(confusion: np.ndarray, cls: int, n: int = 4) -> list[int]:
    """``cls`` and the ``n`` classes most confused with it (both directions summed; ties to the lower index)."""
    c = np.asarray(confusion, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got shape {c.shape}")
    if not 0 <= cls < len(c):
        raise ValueError(f"class {cls} is not among the {len(c)} classes")
    if not 0 <= n < len(c):
        raise ValueError(f"n must lie in 0..{len(c) - 1}, got {n}")
    mixed = c[cls] + c[:, cls]
    others = [j for j in np.argsort(-mixed, kind="stable") if j != cls]
    return [int(cls)] + [int(j) for j in others[:n]]


def random_classes(num_classes: int, cls: int, n: int = 4, seed: int = 0) -> list[int]:
    """``cls`` and ``n`` other classes drawn at random (seeded; ascending), as the paper's subset A."""
    if not 0 <= cls < num_classes:
        raise ValueError(f"class {cls} is not among the {num_classes} classes")
    if not 0 <= n < num_classes:
        raise ValueError(f"n must lie in 0..{num_classes - 1}, got {n}")
    others = [c for c in range(num_classes) if c != cls]
    drawn = np.random.default_rng(seed).choice(len(others), size=n, replace=False)
    return [int(cls)] + sorted(int(others[i]) for i in drawn)


def with_artifact(images, patch, mask, carries=None) -> torch.Tensor:
    """Subset B's images: the isolated artifact pasted onto every image that lacks it.

    ``carries`` (bool per image, optional) marks the images that already show the artifact; they
    stay as they are. Default: none does, the artifact goes onto every image.
    """

    x = torch.as_tensor(images, dtype=torch.float32)
    lack = np.ones(len(x), bool) if carries is None else ~np.asarray(carries, dtype=bool).reshape(-1)
    if len(lack) != len(x):
        raise ValueError(f"{len(x)} images but {len(lack)} carries flags")
    out = x.clone()
    idx = torch.from_numpy(np.flatnonzero(lack))
    if len(idx):
        out[idx] = paste_artifact(x[idx], patch, mask)
    return out


def _handle_of(classifier, like):
    norm = classifier.normalize
    return ModelHandle(classifier.model, mean=norm.mean.flatten().tolist(), std=norm.std.flatten().tolist(),
                       arch=like.arch, class_names=like.class_names, input_size=like.input_size)


def finetune(handle, images, labels, *, epochs: int, lr: float = 0.01, batch_size: int = 64, seed: int = 0,
             on_epoch: Callable[[int, Any], None] | None = None):
    """Fine-tune a copy of the handle's model on the given images (SGD, momentum 0.9, cross-entropy).

    Parameters
    ----------
    handle : ModelHandle
        The trained model; it is left untouched.
    images, labels
        Training images in [0, 1] (N, 3, H, W) and their classes (indices of the model's outputs).
    epochs, lr, batch_size, seed
        Optimisation settings; shuffling and initialisation are seeded.
    on_epoch : callable, optional
        ``on_epoch(epoch, handle)`` after each epoch (1-based) with a handle of the current weights.

    Returns
    -------
    ModelHandle
        The fine-tuned copy.
    """

    x = torch.as_tensor(images, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels).reshape(-1), dtype=torch.long)
    if len(y) != len(x) or len(x) == 0:
        raise ValueError(f"need as many labels as images (> 0), got {len(x)} images and {len(y)} labels")
    if epochs < 1:
        raise ValueError(f"epochs must be positive, got {epochs}")
    classifier = copy.deepcopy(handle.module)
    optimizer = torch.optim.SGD(classifier.parameters(), lr=lr, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    for epoch in range(1, epochs + 1):
        classifier.train()
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(classifier(x[batch]), y[batch]).backward()
            optimizer.step()
        classifier.eval()
        if on_epoch is not None:
            on_epoch(epoch, _handle_of(classifier, handle))
    return _handle_of(classifier, handle)


@torch.no_grad()
def subset_accuracy(handle, images, labels, classes) -> float:
    """Accuracy of the top prediction among ``classes`` only (the subset's own classification task)."""
    x = torch.as_tensor(images, dtype=torch.float32)
    y = np.asarray(labels).reshape(-1)
    classes = np.asarray(classes)
    logits = torch.cat([handle.logits(x[s:s + 256]).cpu() for s in range(0, len(x), 256)])[:, classes]
    return float(np.mean(classes[logits.argmax(dim=1).numpy()] == y))


def heatmap_epochs(epochs: int) -> tuple[int, ...]:
    """The epochs whose heatmaps are kept: 1, 5 and 10 as the paper's Fig. 9, or 1, 5 and the last of a shorter run."""
    if epochs < 1:
        raise ValueError(f"epochs must be positive, got {epochs}")
    return tuple(sorted({e for e in (1, 5, 10) if e <= epochs} | ({epochs} if epochs < 10 else set())))


def unhans_table2(handle, train_images, train_labels, val_images, val_labels, cls: int, patch, mask, *,
                  carries=None, val_carries=None, n_nearest: int = 4, epochs: int = 10, lr: float = 0.01,
                  batch_size: int = 64, seed: int = 0, snapshot_epochs=(1, 5, 10), sample: int | None = None,
                  train_per_class: int | None = None, classes=None, progress: Progress | None = None) -> dict:
    """Un-Hans as Anders et al. §3.3: fine-tune on subset A and on subset B, report Table 2.

    Subset A is the affected class ``cls`` and the ``n_nearest`` classes most confused with it
    (confusion of the given model on the validation images); subset B is A with the isolated
    artifact pasted onto every training image that lacks it (:func:`with_artifact`), so the
    artifact no longer tells the classes apart. The trained model is fine-tuned on each for the
    same epochs and evaluated on the validation images of A's classes: the paper's clean validation set
    holds no artifact, so "clean" here is the *cue-free* validation images only, the ones that carry the
    artifact are scored separately, and "artifact" pastes it onto every image.

    Parameters
    ----------
    handle : ModelHandle
        The trained model (left untouched).
    train_images, train_labels, val_images, val_labels
        Images in [0, 1] (N, 3, H, W) and their classes, e.g. the benchmark's train and test splits.
    cls : int
        The class with the artifact.
    patch, mask
        The isolated artifact (:func:`analysis.spray.artifacts.artifact_patch`, ``artifact_mask``).
    carries : array-like of bool, optional
        Which *training* images already carry the artifact (they are not pasted onto).
    val_carries : array-like of bool, optional
        Which *validation* images carry it (e.g. the benchmark's planted cue): they are left out of the
        clean accuracy and scored on their own; default none does.
    n_nearest, epochs, lr, batch_size, seed
        Subset size and the fine-tuning settings (the same for A and B).
    snapshot_epochs : iterable of int
        Epochs after which the LRP heatmap of the fixed sample is kept.
    sample : int, optional
        Index into the validation images of the fixed sample; default the first of ``cls``.
    train_per_class : int, optional
        At most this many training images per class of A (the first ones); default all.
    classes : sequence of int, optional
        A's classes, ``cls`` first (e.g. chosen by :func:`nearest_by_confusion` beforehand, to load
        only their images); default ``cls`` and the ``n_nearest`` classes most confused with it.
    progress : callable, optional

    Returns
    -------
    dict
        ``classes`` (A's classes, ``cls`` first), ``train_images`` (size of A = size of B),
        ``table`` (rows ``{"model", "clean_accuracy", "carrying_accuracy", "artifact_accuracy"}`` for the
        given model, A and B; accuracy among A's classes on the cue-free validation images, on those
        carrying the artifact (None when none does) and on all with the artifact added),
        ``val_images`` (validation images of A's classes), ``val_clean_images`` and
        ``val_carrying_images`` (how many are cue-free / carry it),
        ``carriers`` (training images of A already carrying the artifact, left as they are in B),
        ``sample`` (its validation index), ``sample_heatmap`` (its (H, W) relevance for ``cls`` under
        the given model) and ``heatmaps`` (``{"A": {epoch: (H, W) relevance}, "B": {...}}`` of the
        sample for ``cls`` after the snapshot epochs).
    """
    # deferred: loads zennit (torch)
    from .lrp import relevance

    tx, vx = torch.as_tensor(train_images, dtype=torch.float32), torch.as_tensor(val_images, dtype=torch.float32)
    ty, vy = np.asarray(train_labels).reshape(-1), np.asarray(val_labels).reshape(-1)
    if len(ty) != len(tx) or len(vy) != len(vx):
        raise ValueError("every train and validation image needs a label")
    carries = np.zeros(len(tx), bool) if carries is None else np.asarray(carries, dtype=bool).reshape(-1)
    if len(carries) != len(tx):
        raise ValueError(f"{len(tx)} train images but {len(carries)} carries flags")
    val_carries = np.zeros(len(vx), bool) if val_carries is None else np.asarray(val_carries, dtype=bool).reshape(-1)
    if len(val_carries) != len(vx):
        raise ValueError(f"{len(vx)} validation images but {len(val_carries)} val_carries flags")
    if classes is None:
        classes = nearest_by_confusion(confusion_counts(handle, vx, vy), int(cls), n_nearest)
    classes = [int(c) for c in classes]
    if not classes or classes[0] != int(cls) or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct and start with the artifact class {cls}, got {classes}")
    in_train, in_val = np.isin(ty, classes), np.isin(vy, classes)
    if train_per_class is not None:
        if train_per_class < 1:
            raise ValueError(f"train_per_class must be positive, got {train_per_class}")
        rank = np.zeros(len(ty), np.int64)  # position of each image among the images of its class
        for c in classes:
            rank[ty == c] = np.arange(int((ty == c).sum()))
        in_train &= rank < train_per_class
    if sample is None:
        own = np.flatnonzero(vy == cls)
        if not len(own):
            raise ValueError(f"no validation image of class {cls} to follow")
        sample = int(own[0])
    a_x, a_y = tx[torch.from_numpy(np.flatnonzero(in_train))], ty[in_train]
    b_x = with_artifact(a_x, patch, mask, carries[in_train])
    val_x, val_y, val_cue = vx[torch.from_numpy(np.flatnonzero(in_val))], vy[in_val], val_carries[in_val]
    if val_cue.all():
        raise ValueError("every validation image of A's classes carries the artifact: no clean validation set")
    val_marked = with_artifact(val_x, patch, mask, val_cue)
    clean, carrying = torch.from_numpy(np.flatnonzero(~val_cue)), torch.from_numpy(np.flatnonzero(val_cue))
    keep = {int(e) for e in snapshot_epochs}
    target = torch.tensor([int(cls)])

    def run(name: str, images: torch.Tensor, step: int):
        maps = {}

        def on_epoch(epoch: int, current) -> None:
            if progress is not None:
                progress(step * epochs + epoch, 2 * epochs, f"subset {name}: epoch {epoch}/{epochs}")
            if epoch in keep:
                maps[epoch] = relevance(current, vx[sample:sample + 1], target).sum(dim=1)[0].numpy()

        tuned = finetune(handle, images, a_y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                         on_epoch=on_epoch)
        return tuned, maps

    model_a, maps_a = run("A", a_x, 0)
    model_b, maps_b = run("B", b_x, 1)
    table = [{"model": name, "clean_accuracy": subset_accuracy(m, val_x[clean], val_y[~val_cue], classes),
              "carrying_accuracy": subset_accuracy(m, val_x[carrying], val_y[val_cue], classes) if len(carrying)
              else None,
              "artifact_accuracy": subset_accuracy(m, val_marked, val_y, classes)}
             for name, m in (("trained", handle), ("A", model_a), ("B", model_b))]
    before = relevance(handle, vx[sample:sample + 1], target).sum(dim=1)[0].numpy()
    return {"classes": classes, "train_images": int(len(a_y)), "val_images": int(len(val_y)),
            "val_clean_images": int((~val_cue).sum()), "val_carrying_images": int(val_cue.sum()),
            "carriers": int(carries[in_train].sum()), "table": table, "sample": sample, "sample_heatmap": before,
            "heatmaps": {"A": maps_a, "B": maps_b}}
