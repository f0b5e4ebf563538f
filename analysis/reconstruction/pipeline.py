"""Train -> reconstruct -> score, as one call a Celery job can run and store.

``run_reconstruction(task, config, progress)`` trains the homogeneous MLP on a
:class:`~.data.BinaryTask`, reconstructs ``2 x n`` candidates from its weights, scores them
against the training images and, when the task has a trigger, reports whether the trigger shows
in the best reconstructions.  The result is a plain dict of numpy arrays and JSON-able values;
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

from .data import BinaryTask, benchmark_task, fashion_mnist_task
from .model import HomogeneousMLP
from .reconstruct import reconstruct
from .scoring import score, to_unit_range, trigger_visibility
from .train import train_full_batch

ProgressCallback = Callable[[int, int, str], None]

#: Defaults: the paper's architecture and the official MNIST run's reconstruction hyper-parameters,
#: on a training set a 2-core CPU reconstructs in ~10 minutes (100 images of 16x16, 3,000 steps
#: at ~170 s per 1,000 steps with one thread); :data:`PAPER_CONFIG` is the paper's size.
DEFAULT_CONFIG: dict[str, Any] = {
    "source": "fashion-mnist",   # or "benchmark" (pass the benchmark to build_task)
    "classes": [0, 8],           # T-shirt/top (-1) vs Bag (+1) for fashion-mnist
    "per_side": 50,
    "size": 16,
    "trigger": None,             # None, "patch", "blend", "subtle"
    "trigger_share": 0.5,
    "trigger_side": 1,
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
    "visible_factor": 2.0,
    "seed": 0,
    "device": "cpu",
    "threads": 1,                # torch CPU threads; None leaves torch's setting (see the module doc)
}

#: The paper's setting (250 images per side at 28x28, 50,000 steps in the official runs): about
#: 15 minutes per 1,000 steps on one CPU thread, so for a GPU.
PAPER_CONFIG: dict[str, Any] = {**DEFAULT_CONFIG, "per_side": 250, "size": 28, "steps": 50_000, "log_every": 500}

_PROGRESS_TOTAL = 1000
_ARRAY_KEYS = (
    "train_images", "train_labels", "triggered", "trigger_mask", "mean", "candidates", "candidates_raw",
    "candidate_labels", "lambdas", "nearest", "ssim", "order", "train_loss", "rec_loss_steps", "rec_loss",
    "rec_kkt_loss", "rec_bound_loss", "baseline_initial_ssim", "baseline_noise_ssim",
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
    return merged


def build_task(config: dict | None = None, benchmark=None) -> BinaryTask:
    """The :class:`BinaryTask` described by ``config`` (``source``, ``classes``, ``per_side``, ...)."""
    cfg = make_config(config)
    kwargs = {key: cfg[key] for key in ("per_side", "size", "trigger", "trigger_share", "trigger_side", "seed")}
    if cfg["source"] == "fashion-mnist":
        return fashion_mnist_task(cfg["classes"], **kwargs)
    if cfg["source"] == "benchmark":
        if benchmark is None:
            raise ValueError("source 'benchmark' needs the benchmark object (benchmark=...)")
        return benchmark_task(benchmark, cfg["classes"], **kwargs)
    raise ValueError(f"source must be 'fashion-mnist' or 'benchmark', got {cfg['source']!r}")


def _stage(progress: ProgressCallback | None, start: float, end: float) -> ProgressCallback | None:
    """Map a stage's ``(done, total, message)`` onto [start, end] of the whole run."""
    if progress is None:
        return None

    def report(done: int, total: int, message: str) -> None:
        frac = start + (end - start) * (done / max(total, 1))
        progress(int(round(frac * _PROGRESS_TOTAL)), _PROGRESS_TOTAL, message)

    return report


def trigger_report(task: BinaryTask, display: np.ndarray, nearest: np.ndarray, ssim: np.ndarray, k: int,
                   noise_display: np.ndarray, factor: float) -> dict | None:
    """Trigger visibility in the best reconstructions of the triggered side vs references.

    ``display`` are the reconstructions as shown (plus the training mean, min-max rescaled to
    [0, 1]); visibility is :func:`~.scoring.trigger_visibility` without a reference, i.e. the
    brightness energy of the trigger region against the rest (the triggers are bright and
    Fashion-MNIST's corners dark).  For each side, the ``k`` training images of that side with the
    highest SSIM give their nearest reconstructions.  ``visible`` is True when the triggered side's
    mean visibility exceeds ``factor`` times the other side's.  The training images' own values
    (triggered vs clean) and those of noise candidates are reported for reference.
    """
    if task.trigger is None or not task.trigger_mask.any() or not task.triggered.any():
        return None
    mask = task.trigger_mask

    def side_visibility(side: int) -> list[float]:
        members = np.flatnonzero(task.y == side)
        best = members[np.argsort(-ssim[members], kind="stable")[:k]]
        return trigger_visibility(display[nearest[best]], mask).tolist()

    trig, other = side_visibility(task.trigger_side), side_visibility(-task.trigger_side)
    noise = trigger_visibility(noise_display, mask)
    train_trig = trigger_visibility(task.images[task.triggered], mask)
    train_clean = trigger_visibility(task.images[~task.triggered], mask)
    return {
        "trigger": task.trigger, "side": task.trigger_side, "k": k, "factor": factor,
        "triggered_side": trig, "other_side": other,
        "triggered_side_mean": float(np.mean(trig)), "other_side_mean": float(np.mean(other)),
        "noise_mean": float(noise.mean()),
        "train_triggered_mean": float(train_trig.mean()), "train_clean_mean": float(train_clean.mean()),
        "visible": bool(np.mean(trig) > factor * np.mean(other)),
    }


def run_reconstruction(task: BinaryTask, config: dict | None = None,
                       progress: ProgressCallback | None = None) -> dict:
    """Train the homogeneous MLP on ``task``, reconstruct from its weights and score.

    Parameters
    ----------
    task : BinaryTask
    config : dict, optional
        Overrides of :data:`DEFAULT_CONFIG` (the data keys are ignored here; see :func:`build_task`).
    progress : callable, optional
        ``progress(done, 1000, message)`` (training 0-25 %, reconstruction 25-95 %, scoring).

    Returns
    -------
    dict
        Arrays (see ``_ARRAY_KEYS``) and plain values: ``best_k_mean``, ``baseline_initial_best_k_mean``,
        ``baseline_noise_best_k_mean``, ``best`` (the k best pairs), ``trigger_report``, ``train``,
        ``reconstruction``, ``timings``, ``config``, ``class_names``, ``classes``, ``trigger``.
    """
    cfg = make_config(config)
    previous = torch.get_num_threads()
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    try:
        return _run(task, cfg, progress)
    finally:
        torch.set_num_threads(previous)


def _run(task: BinaryTask, cfg: dict, progress: ProgressCallback | None) -> dict:
    """The body of :func:`run_reconstruction` (``cfg`` complete)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    size, n = task.size, len(task)
    device = torch.device(cfg["device"])

    model = HomogeneousMLP(task.x.shape[1], hidden=cfg["hidden"], init_scale=cfg["init_scale"],
                           seed=cfg["seed"]).to(device)
    trained = train_full_batch(model, task.x, task.y, lr=cfg["train_lr"], max_lr=cfg["train_max_lr"],
                               tol=cfg["train_tol"], max_epochs=cfg["train_max_epochs"],
                               progress=_stage(progress, 0.0, 0.25))
    timings["train_s"] = trained.seconds

    m = cfg["candidates_per_image"] * n
    rec = reconstruct(model, m, steps=cfg["steps"], lr=cfg["lr"], lambda_lr=cfg["lambda_lr"],
                      init_scale=cfg["rec_init_scale"], lambda_min=cfg["lambda_min"], alpha=cfg["alpha"],
                      log_every=cfg["log_every"], seed=cfg["seed"], device=device,
                      progress=_stage(progress, 0.25, 0.95))
    timings["reconstruct_s"] = rec.seconds

    t0 = time.perf_counter()
    raw = rec.candidates.reshape(m, size, size)
    scored = score(task.images, task.mean, raw, k=cfg["k"])
    rng = np.random.default_rng(cfg["seed"])
    initial = rng.standard_normal(raw.shape) * cfg["rec_init_scale"]
    noise = rng.standard_normal(raw.shape)
    base_initial = score(task.images, task.mean, initial, k=cfg["k"])
    base_noise = score(task.images, task.mean, noise, k=cfg["k"])
    display = to_unit_range(raw + task.mean)
    report = trigger_report(task, display, scored.nearest, scored.ssim, cfg["k"], to_unit_range(noise + task.mean),
                            cfg["visible_factor"])
    timings["score_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    if progress is not None:
        progress(_PROGRESS_TOTAL, _PROGRESS_TOTAL, "done")

    best = [{"train_index": int(i), "recon_index": int(scored.nearest[i]), "ssim": float(scored.ssim[i]),
             "label": int(task.y[i]), "triggered": bool(task.triggered[i])} for i in scored.order[:scored.k]]
    return {
        "train_images": task.images.astype(np.float32), "train_labels": task.y.astype(np.int8),
        "triggered": task.triggered, "trigger_mask": task.trigger_mask, "mean": task.mean.astype(np.float32),
        "candidates": display.astype(np.float32), "candidates_raw": raw.astype(np.float32),
        "candidate_labels": rec.y.astype(np.int8), "lambdas": rec.lambdas,
        "nearest": scored.nearest, "ssim": scored.ssim, "order": scored.order,
        "train_loss": trained.losses, "rec_loss_steps": rec.loss_steps, "rec_loss": rec.loss,
        "rec_kkt_loss": rec.kkt_loss, "rec_bound_loss": rec.bound_loss,
        "baseline_initial_ssim": base_initial.ssim, "baseline_noise_ssim": base_noise.ssim,
        "best_k_mean": scored.best_k_mean, "k": scored.k,
        "baseline_initial_best_k_mean": base_initial.best_k_mean,
        "baseline_noise_best_k_mean": base_noise.best_k_mean,
        "best": best, "trigger_report": report,
        "train": {"epochs": trained.epochs, "accuracy": trained.accuracy, "converged": trained.converged,
                  "final_loss": float(trained.losses[-1])},
        "reconstruction": {"steps": rec.steps, "candidates": m, "final_loss": float(rec.loss[-1]),
                           "seconds_per_1000_steps": 1000.0 * rec.seconds / max(rec.steps, 1)},
        "timings": timings, "config": cfg, "class_names": list(task.class_names), "classes": list(task.classes),
        "trigger": task.trigger,
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
