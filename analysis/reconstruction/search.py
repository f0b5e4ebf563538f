"""The reconstruction hyper-parameter search of Haim et al. (2022, App.): random search, best-10 SSIM as criterion.

The reference code runs a random ``wandb`` sweep (``reconstructions/<problem>/sweep.txt``) over the four
reconstruction hyper-parameters, with these distributions: ``extraction_lr`` log-uniform in [1e-5, 1],
``extraction_init_scale`` log-uniform in [1e-6, 0.1], ``extraction_min_lambda`` uniform in [0.01, 0.5] and
``extraction_model_relu_alpha`` (the α of the ReLU's sigmoid backward) uniform in [10, 500]. The model is
trained once; each trial reconstructs from its weights and is scored by the mean SSIM of the best 10 pairs
(:func:`~.scoring.score`, the reference code's score); the best trial is the one with the highest score.
(The sweep file names its own ``extraction score`` metric; the appendix picks runs by the reconstructions'
quality, which is what best-10 SSIM measures.)
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from .data import BinaryTask
from .model import HomogeneousMLP
from .reconstruct import reconstruct
from .scoring import score
from .train import accuracy, train_full_batch

#: Parameter (our config's name) -> (the reference code's name, distribution, low, high).
SPACE: dict[str, tuple[str, str, float, float]] = {
    "lr": ("extraction_lr", "log_uniform", 1e-5, 1.0),
    "lambda_min": ("extraction_min_lambda", "uniform", 0.01, 0.5),
    "rec_init_scale": ("extraction_init_scale", "log_uniform", 1e-6, 0.1),
    "alpha": ("extraction_model_relu_alpha", "uniform", 10.0, 500.0),
}
COLUMNS = ["trial", *SPACE, "best_k_mean", "k", "final_loss", "seconds", "rank"]


def sample_trials(n: int, seed: int = 0, space: dict = SPACE) -> list[dict[str, float]]:
    """``n`` hyper-parameter draws from ``space`` (seeded): log-uniform or uniform per parameter."""
    if n < 1:
        raise ValueError(f"a search needs at least one trial, got {n}")
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(n):
        draw = {}
        for name, (_, kind, low, high) in space.items():
            u = rng.uniform(np.log(low), np.log(high)) if kind == "log_uniform" else rng.uniform(low, high)
            draw[name] = float(np.exp(u) if kind == "log_uniform" else u)
        trials.append(draw)
    return trials


def hyperparameter_search(task: BinaryTask, config: dict, trials: int, seed: int = 0,
                          test: tuple[np.ndarray, np.ndarray] | None = None,
                          progress: Callable[[int, int, str], None] | None = None) -> tuple[pd.DataFrame, dict]:
    """Train the homogeneous MLP on ``task`` once (``config`` as :func:`~.pipeline.make_config` completes it),
    then reconstruct once per drawn trial and score it. Returns the trials table (ranked by best-k SSIM, 1 = best)
    and ``{"train_accuracy", "test_accuracy", "best": the best trial's parameters and score}``."""
    draws = sample_trials(trials, seed)
    previous = torch.get_num_threads()
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    try:
        model = HomogeneousMLP(task.x.shape[1], hidden=config["hidden"], init_scale=config["init_scale"],
                               seed=config["seed"])
        trained = train_full_batch(model, task.x, task.y, lr=config["train_lr"], max_lr=config["train_max_lr"],
                                   tol=config["train_tol"], max_epochs=config["train_max_epochs"])
        test_accuracy = None if test is None else accuracy(
            model, (np.asarray(test[0]) - task.mean).reshape(len(test[1]), -1), np.asarray(test[1]))
        rows = []
        for i, draw in enumerate(draws):
            if progress:
                progress(i, len(draws), f"trial {i + 1} of {len(draws)}")
            started = time.perf_counter()
            rec = reconstruct(model, config["candidates_per_image"] * len(task), steps=config["steps"],
                              lr=draw["lr"], lambda_lr=config["lambda_lr"], init_scale=draw["rec_init_scale"],
                              lambda_min=draw["lambda_min"], alpha=draw["alpha"], log_every=config["log_every"],
                              seed=config["seed"])
            raw = rec.candidates.reshape(-1, task.size, task.size)
            finite = np.isfinite(raw).all()
            scored = score(task.images, task.mean, raw if finite else np.zeros_like(raw), k=config["k"],
                           method=config["score"])
            rows.append({"trial": i + 1, **draw, "best_k_mean": float(scored.best_k_mean) if finite else float("nan"),
                         "k": scored.k, "final_loss": float(rec.loss[-1]) if len(rec.loss) else float("nan"),
                         "seconds": time.perf_counter() - started})
    finally:
        torch.set_num_threads(previous)
    table = pd.DataFrame(rows)
    table["rank"] = table["best_k_mean"].rank(ascending=False, method="first", na_option="bottom").astype(int)
    table = table[COLUMNS]
    best = table.sort_values("rank").iloc[0]
    if progress:
        progress(len(draws), len(draws), "search done")
    best = {**{name: float(best[name]) for name in (*SPACE, "best_k_mean")}, "trial": int(best["trial"])}
    return table, {"train_accuracy": trained.accuracy, "test_accuracy": test_accuracy, "best": best}
