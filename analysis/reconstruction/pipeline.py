"""Train -> reconstruct -> score, as one call a Celery job can run and store.

``run_reconstruction(task, config, progress, test)`` trains the homogeneous MLP on a
:class:`~.data.BinaryTask`, measures its accuracy on the clean test split (``build_test``),
reconstructs ``2 x n`` candidates from its weights, scores them against the training images and,
when the task has triggers, reports how often a trigger shows in the best reconstructions.
The result is a plain dict of numpy arrays and JSON-able values;
``save``/``load`` write it as ``result.npz`` + ``result.json`` in a directory.

Baselines scored the same way: ``initial`` (the candidates before any optimisation step, i.e.
the training mean plus a little noise once the mean is added back) and ``noise`` (unit Gaussian
candidates).  A reconstruction only means something where it beats both.

Threads: the matrices are small and the machine is shared, so the default is one torch thread;
on the 2-core development machine under load two threads made a reconstruction step ~5x
slower than one.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .bias import DEFAULT_PAIR, POSITIONAL, plant_other_side, unique_triggers
from .data import BinaryTask, benchmark_split, binary_task, clean_split, fashion_mnist_split
from .model import HomogeneousMLP
from .reconstruct import reconstruct
from .scoring import METHODS, score, shown_trigger, to_unit_range, trigger_standout
from .train import accuracy, train_full_batch

ProgressCallback = Callable[[int, int, str], None]

#: Defaults: the paper's architecture and the official MNIST run's reconstruction hyper-parameters,
#: on a training set a 2-core CPU reconstructs in ~10 minutes (100 images of 16x16, 3,000 steps
#: at ~170 s per 1,000 steps with one thread); :data:`PAPER_CONFIG` is the paper's size.
DEFAULT_CONFIG: dict[str, Any] = {
    "source": "fashion-mnist",   # or "benchmark" (pass the benchmark to build_task)
    "classes": list(DEFAULT_PAIR),  # T-shirt/top (-1) vs Shirt (+1) for fashion-mnist (bias.DEFAULT_PAIR)
    "per_side": 50,
    "size": 16,
    "bias": "base",              # one of bias.BIASES: base, L1, L2, L3, contrast, patch, blend, subtle
    "trigger_share": 0.5,        # intensity triggers only: share of trigger_side's images
    "trigger_side": 1,
    "test_limit": None,          # clean test images per class (None: the whole test split)
    "hidden": 1000,
    "init_scale": 1e-4,          # first layer (weights and bias) std
    "train_lr": 0.01,
    "train_max_lr": 200.0,
    "train_tol": 1e-5,
    "train_max_epochs": 20_000,
    "candidates_per_image": 2,
    "steps": 3000,
    "lr": 0.03,
    "lambda_lr": 1e-4,
    "rec_init_scale": 0.03,
    "lambda_min": 0.45,
    "alpha": 150.0,
    "log_every": 50,
    "k": 10,
    "score": "reference",        # scoring.METHODS: the reference code's score, or the earlier "nearest-7x7"
    "trigger_threshold": 0.2,    # a trigger shows where its box stands out by this (scoring.trigger_standout)
    "seed": 0,
    "device": "cpu",
    "threads": 1,                # torch CPU threads; None leaves torch's setting (see the module doc)
}

#: The paper's setting (250 images per side at 28x28, 50,000 steps in the official runs): about
#: 15 minutes per 1,000 steps on one CPU thread, so for a GPU.
PAPER_CONFIG: dict[str, Any] = {**DEFAULT_CONFIG, "per_side": 250, "size": 28, "steps": 50_000, "log_every": 500}

#: Version of what :func:`run_reconstruction` computes; part of every cache key, so that a result computed by
#: older code is never reused (2: the reference code's score, nearest_ssim and display_order; 3: the test accuracy
#: with the other side's trigger).
RESULT_VERSION = 3

_PROGRESS_TOTAL = 1000
_ARRAY_KEYS = (
    "train_images", "train_labels", "triggered", "trigger_mask", "boxes", "trigger_values", "mean", "candidates",
    "candidates_raw", "candidate_labels", "lambdas", "nearest", "closest", "paired", "ssim", "order", "train_loss",
    "rec_loss_steps", "rec_loss", "rec_kkt_loss", "rec_bound_loss", "baseline_initial_ssim", "baseline_noise_ssim",
    "nearest_ssim", "display_order", "baseline_initial_nearest_ssim",
)


def make_config(config: dict | None = None) -> dict:
    """``DEFAULT_CONFIG`` updated with ``config``; unknown keys raise ValueError."""
    config = dict(config or {})
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"unknown reconstruction config keys: {unknown}")
    merged = {**DEFAULT_CONFIG, **config}
    if merged["candidates_per_image"] < 1:
        raise ValueError(f"candidates_per_image must be >= 1, got {merged['candidates_per_image']}")
    if merged["score"] not in METHODS:
        raise ValueError(f"score must be one of {METHODS}, got {merged['score']!r}")
    return merged


def _split(cfg: dict, split: str, benchmark) -> tuple:
    if cfg["source"] == "fashion-mnist":
        return fashion_mnist_split(cfg["classes"], split)
    if cfg["source"] == "benchmark":
        if benchmark is None:
            raise ValueError("source 'benchmark' needs the benchmark object (benchmark=...)")
        return benchmark_split(benchmark, cfg["classes"], split)
    raise ValueError(f"source must be 'fashion-mnist' or 'benchmark', got {cfg['source']!r}")


def build_task(config: dict | None = None, benchmark=None) -> BinaryTask:
    """The training :class:`BinaryTask` described by ``config`` (``source``, ``classes``, ``bias``, ...)."""
    cfg = make_config(config)
    images, labels, names = _split(cfg, "train", benchmark)
    return binary_task(images, labels, cfg["classes"], class_names=names, per_side=cfg["per_side"], size=cfg["size"],
                       bias=cfg["bias"], trigger_share=cfg["trigger_share"], trigger_side=cfg["trigger_side"],
                       seed=cfg["seed"])


def build_test(config: dict | None = None, benchmark=None) -> tuple[np.ndarray, np.ndarray]:
    """The clean test images (n, size, size) in [0, 1] of the config's two classes and their -1/+1 labels."""
    cfg = make_config(config)
    images, labels, _ = _split(cfg, "test", benchmark)
    return clean_split(images, labels, cfg["classes"], size=cfg["size"], limit=cfg["test_limit"], seed=cfg["seed"])


def _stage(progress: ProgressCallback | None, start: float, end: float) -> ProgressCallback | None:
    """Map a stage's ``(done, total, message)`` onto [start, end] of the whole run."""
    if progress is None:
        return None

    def report(done: int, total: int, message: str) -> None:
        frac = start + (end - start) * (done / max(total, 1))
        progress(int(round(frac * _PROGRESS_TOTAL)), _PROGRESS_TOTAL, message)

    return report


def trigger_report(task: BinaryTask, display: np.ndarray, nearest: np.ndarray, order: np.ndarray, k: int,
                   noise_display: np.ndarray, threshold: float) -> dict | None:
    """How often a planted trigger shows in the best reconstructions, beside the training images and noise.

    ``display`` are the reconstructions as shown (plus the training mean, min-max rescaled to
    [0, 1]).  The ``k`` first training images of ``order`` (the best shown pairs,
    :attr:`~.scoring.Score.display_order`) give their nearest reconstructions; each
    shows a trigger when one of the task's distinct (box, value) triggers stands out by
    ``threshold`` (:func:`~.scoring.shown_trigger`).  ``train_shown`` is the same share over the
    training images themselves (a 0-valued square on black never shows), ``noise_shown`` over
    noise candidates.  None when the task has no trigger.
    """
    triggers = unique_triggers(task.boxes, task.values)
    if not triggers:
        return None
    best = display[nearest[order[:k]]]
    shown, standout = shown_trigger(best, triggers, threshold)
    own = np.array([trigger_standout(task.images[i:i + 1], task.boxes[i], task.values[i])[0]
                    for i in np.flatnonzero(task.triggered)])
    return {
        "triggers": len(triggers), "k": int(len(best)), "threshold": threshold,
        "best_k_shown": float((shown >= 0).mean()), "best_k_standout": standout.tolist(),
        "train_shown": float((own >= threshold).mean()),
        "noise_shown": float((shown_trigger(noise_display, triggers, threshold)[0] >= 0).mean()),
    }


def run_reconstruction(task: BinaryTask, config: dict | None = None, progress: ProgressCallback | None = None,
                       test: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Train the homogeneous MLP on ``task``, reconstruct from its weights and score.

    Parameters
    ----------
    task : BinaryTask
    config : dict, optional
        Overrides of :data:`DEFAULT_CONFIG` (the data keys are ignored here; see :func:`build_task`).
    progress : callable, optional
        ``progress(done, 1000, message)`` (training 0-25 %, reconstruction 25-95 %, scoring).
    test : (images, labels), optional
        Clean test images (n, size, size) in [0, 1] and -1/+1 labels (:func:`build_test`); the model
        sees them minus the training mean, like its training inputs.

    Returns
    -------
    dict
        Arrays (see ``_ARRAY_KEYS``) and plain values: ``test_accuracy`` (None without ``test``),
        ``test_accuracy_other_trigger`` (positional levels: the same test images, each carrying a trigger of the
        other side, :func:`~.bias.plant_other_side`; None otherwise),
        ``test_size``, ``best_k_mean``, ``baseline_initial_best_k_mean``,
        ``baseline_noise_best_k_mean``, ``best`` (the k best pairs), ``trigger_report``, ``train``,
        ``reconstruction``, ``timings``, ``config``, ``class_names``, ``classes``, ``bias``.
    """
    cfg = make_config(config)
    previous = torch.get_num_threads()
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    try:
        return _run(task, cfg, progress, test)
    finally:
        torch.set_num_threads(previous)


def _run(task: BinaryTask, cfg: dict, progress: ProgressCallback | None, test) -> dict:
    """The body of :func:`run_reconstruction` (``cfg`` complete)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    size, n = task.size, len(task)
    device = torch.device(cfg["device"])
    if test is not None:
        test = (np.asarray(test[0], dtype=np.float64), np.asarray(test[1], dtype=np.float64))
        if test[0].shape[1:] != (size, size) or len(test[0]) != len(test[1]):
            raise ValueError(f"test must be images (n, {size}, {size}) like the training images and n labels, "
                             f"got {test[0].shape} and {test[1].shape}")

    model = HomogeneousMLP(task.x.shape[1], hidden=cfg["hidden"], init_scale=cfg["init_scale"],
                           seed=cfg["seed"]).to(device)
    trained = train_full_batch(model, task.x, task.y, lr=cfg["train_lr"], max_lr=cfg["train_max_lr"],
                               tol=cfg["train_tol"], max_epochs=cfg["train_max_epochs"],
                               progress=_stage(progress, 0.0, 0.25))
    timings["train_s"] = trained.seconds
    test_accuracy = (None if test is None
                     else accuracy(model, (test[0] - task.mean).reshape(len(test[1]), -1), test[1]))
    other_trigger_accuracy = None
    if test is not None and task.bias in POSITIONAL:
        swapped = plant_other_side(test[0], test[1], unique_triggers(task.boxes, task.values),
                                   np.random.default_rng(cfg["seed"]))
        other_trigger_accuracy = accuracy(model, (swapped - task.mean).reshape(len(test[1]), -1), test[1])

    m = cfg["candidates_per_image"] * n
    rec = reconstruct(model, m, steps=cfg["steps"], lr=cfg["lr"], lambda_lr=cfg["lambda_lr"],
                      init_scale=cfg["rec_init_scale"], lambda_min=cfg["lambda_min"], alpha=cfg["alpha"],
                      log_every=cfg["log_every"], seed=cfg["seed"], device=device,
                      progress=_stage(progress, 0.25, 0.95))
    timings["reconstruct_s"] = rec.seconds

    t0 = time.perf_counter()
    raw = rec.candidates.reshape(m, size, size)
    scored = score(task.images, task.mean, raw, k=cfg["k"], method=cfg["score"])
    rng = np.random.default_rng(cfg["seed"])
    initial = rng.standard_normal(raw.shape) * cfg["rec_init_scale"]
    noise = rng.standard_normal(raw.shape)
    base_initial = score(task.images, task.mean, initial, k=cfg["k"], method=cfg["score"])
    base_noise = score(task.images, task.mean, noise, k=cfg["k"], method=cfg["score"])
    display = to_unit_range(raw + task.mean)
    report = trigger_report(task, display, scored.nearest, scored.display_order, cfg["k"],
                            to_unit_range(noise + task.mean), cfg["trigger_threshold"])
    timings["score_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    if progress is not None:
        progress(_PROGRESS_TOTAL, _PROGRESS_TOTAL, "done")

    best = [{"train_index": int(i), "recon_index": int(scored.nearest[i]), "closest": int(scored.closest[i]),
             "ssim": float(scored.ssim[i]),
             "label": int(task.y[i]), "triggered": bool(task.triggered[i])} for i in scored.order[:scored.k]]
    return {
        "train_images": task.images.astype(np.float32), "train_labels": task.y.astype(np.int8),
        "triggered": task.triggered, "trigger_mask": task.trigger_mask, "boxes": task.boxes,
        "trigger_values": task.values, "mean": task.mean.astype(np.float32),
        "candidates": display.astype(np.float32), "candidates_raw": raw.astype(np.float32),
        "candidate_labels": rec.y.astype(np.int8), "lambdas": rec.lambdas,
        "nearest": scored.nearest, "closest": scored.closest, "paired": scored.paired.astype(np.float32),
        "ssim": scored.ssim, "order": scored.order, "nearest_ssim": scored.nearest_ssim,
        "display_order": scored.display_order, "score_method": scored.method,
        "baseline_initial_nearest_ssim": base_initial.nearest_ssim,
        "train_loss": trained.losses, "rec_loss_steps": rec.loss_steps, "rec_loss": rec.loss,
        "rec_kkt_loss": rec.kkt_loss, "rec_bound_loss": rec.bound_loss,
        "baseline_initial_ssim": base_initial.ssim, "baseline_noise_ssim": base_noise.ssim,
        "best_k_mean": scored.best_k_mean, "k": scored.k,
        "baseline_initial_best_k_mean": base_initial.best_k_mean,
        "baseline_noise_best_k_mean": base_noise.best_k_mean,
        "best": best, "trigger_report": report,
        "test_accuracy": test_accuracy, "test_size": None if test is None else int(len(test[1])),
        "test_accuracy_other_trigger": other_trigger_accuracy,
        "train": {"epochs": trained.epochs, "accuracy": trained.accuracy, "converged": trained.converged,
                  "final_loss": float(trained.losses[-1])},
        "reconstruction": {"steps": rec.steps, "candidates": m, "final_loss": float(rec.loss[-1]),
                           "seconds_per_1000_steps": 1000.0 * rec.seconds / max(rec.steps, 1)},
        "timings": timings, "config": cfg, "class_names": list(task.class_names), "classes": list(task.classes),
        "bias": task.bias,
    }


def save(result: dict, directory: str | os.PathLike) -> Path:
    """Write ``result.npz`` (arrays) and ``result.json`` (the rest) into ``directory``; return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {key: np.asarray(result[key]) for key in _ARRAY_KEYS}
    meta = {key: value for key, value in result.items() if key not in _ARRAY_KEYS}
    tmp = directory / "result.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, directory / "result.npz")
    (directory / "result.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return directory


def load(directory: str | os.PathLike) -> dict:
    """Read a result written by :func:`save`."""
    directory = Path(directory)
    for name in ("result.npz", "result.json"):
        if not (directory / name).is_file():
            raise ValueError(f"{directory} holds no reconstruction result ({name} missing)")
    result = json.loads((directory / "result.json").read_text())
    with np.load(directory / "result.npz", allow_pickle=False) as archive:
        result.update({key: archive[key] for key in archive.files})
    return result
