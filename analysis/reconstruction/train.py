"""Full-batch training of the homogeneous MLP to (near) zero logistic loss.

Haim et al.'s reconstruction needs a network close to a KKT point of the max-margin problem,
which gradient flow on the logistic loss reaches in direction (Lyu & Li 2019).  We run full-batch
gradient descent on the mean logistic loss ``mean(log(1 + exp(-y f(x))))`` (the official code's
``BCEWithLogitsLoss``).  Plain GD with lr 0.01 needs ~10^5-10^6 epochs to reach tiny losses, far
too slow here, so the step is scaled by the inverse loss, ``lr_t = lr / max(L_t, min_loss)`` capped
at ``max_lr`` (the loss-based learning rate of Lyu & Li, which keeps GD's trajectory direction but
moves at constant speed once the data are separated).  Training stops when the loss is below
``tol`` (1e-5, as in the seed paper) or after ``max_epochs``.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import attrs
import numpy as np
import torch
from torch.nn import functional as F

ProgressCallback = Callable[[int, int, str], None]


@attrs.frozen(eq=False)
class TrainResult:
    """Outcome of :func:`train_full_batch`.

    Attributes
    ----------
    losses : float64 (epochs,)
        Mean logistic loss before each update.
    accuracy : float
        Training accuracy at the end.
    epochs : int
    converged : bool
        Whether the loss went below ``tol``.
    seconds : float
    """

    losses: np.ndarray
    accuracy: float
    epochs: int
    converged: bool
    seconds: float


def logistic_loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean ``log(1 + exp(-y * scores))`` (stable)."""
    return F.softplus(-y * scores).mean()


def accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 4096) -> float:
    """Share of rows of ``x`` (n, d) whose score has the sign of their label ``y`` in {-1, +1}."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x must be (n, d) with one label per row and n >= 1, got x {x.shape} and y {y.shape}")
    param = next(model.parameters())
    right = 0
    with torch.no_grad():
        for start in range(0, len(x), batch):
            scores = model(torch.as_tensor(x[start:start + batch], dtype=param.dtype, device=param.device))
            right += int((torch.sign(scores).cpu().numpy() == y[start:start + batch]).sum())
    return right / len(x)


def train_full_batch(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, *, lr: float = 0.01,
                     max_lr: float = 200.0, tol: float = 1e-5, max_epochs: int = 20_000,
                     progress: ProgressCallback | None = None, progress_every: int = 100) -> TrainResult:
    """Train ``model`` in place by full-batch GD with a loss-scaled step.

    Parameters
    ----------
    model : HomogeneousMLP
    x : float (n, d)
        Mean-subtracted inputs.
    y : float (n,)
        Labels in {-1, +1}.
    lr : float
        Base step; the step used is ``min(lr / loss, max_lr)``.
    max_lr : float
        Cap of the loss-scaled step.
    tol : float
        Stop once the mean loss is below this.
    max_epochs : int
    progress : callable, optional
        ``progress(epoch, max_epochs, message)`` every ``progress_every`` epochs.

    Returns
    -------
    TrainResult
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x must be (n, d) with one label per row, got x {x.shape} and y {y.shape}")
    if not np.all(np.isin(y, (-1.0, 1.0))):
        raise ValueError("y must hold only -1 and +1")
    if not (lr > 0 and max_lr > 0 and tol > 0 and max_epochs >= 1):
        raise ValueError(f"lr, max_lr, tol must be positive and max_epochs >= 1, got "
                         f"{lr}, {max_lr}, {tol}, {max_epochs}")
    param = next(model.parameters())
    xt = torch.as_tensor(x, dtype=param.dtype, device=param.device)
    yt = torch.as_tensor(y, dtype=param.dtype, device=param.device)
    params = list(model.parameters())
    started = time.perf_counter()
    losses, converged = [], False
    for epoch in range(max_epochs):
        loss = logistic_loss(model(xt), yt)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"training diverged at epoch {epoch} (loss {value})")
        losses.append(value)
        if value < tol:
            converged = True
            break
        grads = torch.autograd.grad(loss, params)
        step = min(lr / value, max_lr)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(step * g)
        if progress is not None and epoch % progress_every == 0:
            progress(epoch, max_epochs, f"training: loss {value:.3g}")
    return TrainResult(losses=np.asarray(losses), accuracy=accuracy(model, x, y), epochs=len(losses),
                       converged=converged, seconds=time.perf_counter() - started)
