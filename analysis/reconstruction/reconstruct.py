"""Reconstructing training samples from the weights of a trained homogeneous MLP (Haim et al. 2022).

A network trained to a KKT point of the max-margin problem satisfies
``theta = sum_i lambda_i y_i grad_theta Phi(x_i)`` over its training points.  Given only ``theta``
we look for m candidates ``x_i`` (labels ``y_i`` = -1 for the first half, +1 for the second) and
multipliers ``lambda_i`` minimising (Haim et al. 2022, as Revealing Model Biases §4.2 uses it)::

    sum_p || theta_p - (1/m) sum_i lambda_i y_i grad_{theta_p} Phi(x_i) ||^2
      + sum [relu(x - 1)^2 + relu(-1 - x)^2] + 5 sum relu(lambda_min - lambda_i)^2

with Φ evaluated through :func:`~.model.modified_relu` (derivative sigmoid(alpha z)).  The inner
sum is one ``autograd.grad`` of ``sum_i lambda_i y_i Phi(x_i) / m`` with ``create_graph=True``.
All in float64; SGD with momentum 0.9 on x (``lr``) and on lambda (``lambda_lr``), as in the
official code (``nivha/dataset_reconstruction``, ``extraction.py``): the theta term is *not*
normalised per layer (a plain sum over all parameter tensors), and lambda has its own, much
smaller learning rate (the official default 1e-4).
"""
from __future__ import annotations

import math
import time
from typing import Callable

import attrs
import numpy as np
import torch

from .model import HomogeneousMLP

ProgressCallback = Callable[[int, int, str], None]


@attrs.frozen(eq=False)
class ReconstructionResult:
    """Outcome of :func:`reconstruct`.

    Attributes
    ----------
    candidates : float64 (m, d)
        The reconstructed inputs (mean-subtracted space, like the training inputs).
    y : float64 (m,)
        Candidate labels, -1 for the first half and +1 for the second.
    lambdas : float64 (m,)
    loss_steps : int64 (k,)
        Steps at which the losses were logged.
    loss, kkt_loss, bound_loss : float64 (k,)
        Total objective, its theta (KKT) term and its penalty terms at those steps.
    steps : int
    seconds : float
    """

    candidates: np.ndarray
    y: np.ndarray
    lambdas: np.ndarray
    loss_steps: np.ndarray
    loss: np.ndarray
    kkt_loss: np.ndarray
    bound_loss: np.ndarray
    steps: int
    seconds: float


def candidate_labels(m: int) -> np.ndarray:
    """-1 for the first ``m // 2`` candidates, +1 for the rest."""
    y = np.ones(m)
    y[: m // 2] = -1.0
    return y


def kkt_loss(model: torch.nn.Module, x: torch.Tensor, lambdas: torch.Tensor, y: torch.Tensor,
             alpha: float) -> torch.Tensor:
    """``sum_p || theta_p - (1/m) sum_i lambda_i y_i grad_theta_p Phi(x_i) ||^2`` (differentiable in x, lambda)."""
    params = [p for p in model.parameters()]
    values = model(x, alpha=alpha)
    combined = (values * lambdas * y).sum() / len(x)
    grads = torch.autograd.grad(combined, params, create_graph=True)
    return sum((p.detach() - g).pow(2).sum() for p, g in zip(params, grads))


def bound_loss(x: torch.Tensor, lambdas: torch.Tensor, lambda_min: float) -> torch.Tensor:
    """Penalties: pixels outside [-1, 1], multipliers below ``lambda_min`` (weight 5)."""
    return ((x - 1).relu().pow(2).sum() + (-1 - x).relu().pow(2).sum()
            + 5.0 * (lambda_min - lambdas).relu().pow(2).sum())


def _check(m: int, steps: int, lr: float, lambda_lr: float, init_scale: float, lambda_min: float,
           alpha: float, log_every: int) -> None:
    if m < 2:
        raise ValueError(f"n_candidates must be >= 2, got {m}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    for name, value in (("lr", lr), ("lambda_lr", lambda_lr), ("init_scale", init_scale), ("alpha", alpha)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if lambda_min < 0:
        raise ValueError(f"lambda_min must be >= 0, got {lambda_min}")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")


def reconstruct(model: torch.nn.Module, n_candidates: int, *, steps: int = 5000, lr: float = 0.03,
                lambda_lr: float = 1e-4, init_scale: float = 0.03, lambda_min: float = 0.45,
                alpha: float = 150.0, log_every: int = 50, seed: int = 0, device: str | torch.device | None = None,
                progress: ProgressCallback | None = None) -> ReconstructionResult:
    """Reconstruct candidates of the training set from ``model``'s parameters alone.

    Parameters
    ----------
    model : HomogeneousMLP
        The trained network (copied to float64; not modified).
    n_candidates : int
        m, twice the training-set size in the paper.
    steps : int
        SGD iterations.
    lr, lambda_lr : float
        Learning rates of the candidates and of the multipliers (momentum 0.9 for both).
    init_scale : float
        Candidates start at ``randn * init_scale``; multipliers at U(0, 1).
    lambda_min : float
        Lower bound on the multipliers enforced by the penalty.
    alpha : float
        Steepness of the modified ReLU's derivative.
    log_every : int
        Log the losses every this many steps (and at the last step).
    seed : int
    device : str or torch.device, optional
        Default: the model's device.
    progress : callable, optional
        ``progress(step, steps, message)`` at every logged step.

    Returns
    -------
    ReconstructionResult
    """
    if not isinstance(model, HomogeneousMLP):
        raise ValueError(f"model must be a HomogeneousMLP, got {type(model).__name__}")
    _check(n_candidates, steps, lr, lambda_lr, init_scale, lambda_min, alpha, log_every)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    net = model.float64_copy().to(device)
    for p in net.parameters():
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(int(seed))
    d = net.d
    x = (torch.randn(n_candidates, d, generator=gen, dtype=torch.float64) * init_scale).to(device).requires_grad_()
    lam = torch.rand(n_candidates, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    y = torch.as_tensor(candidate_labels(n_candidates), device=device)
    opt_x = torch.optim.SGD([x], lr=lr, momentum=0.9)
    opt_l = torch.optim.SGD([lam], lr=lambda_lr, momentum=0.9)
    log = {"step": [], "loss": [], "kkt": [], "bound": []}
    started = time.perf_counter()
    for step in range(steps + 1):
        kkt = kkt_loss(net, x, lam, y, alpha)
        bound = bound_loss(x, lam, lambda_min)
        loss = kkt + bound
        if step % log_every == 0 or step == steps:
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"reconstruction diverged at step {step} (loss {value}); lower lr")
            log["step"].append(step), log["loss"].append(value)
            log["kkt"].append(float(kkt.detach())), log["bound"].append(float(bound.detach()))
            if progress is not None:
                progress(step, steps, f"reconstruction: loss {value:.4g}")
        if step == steps:
            break
        opt_x.zero_grad(), opt_l.zero_grad()
        gx, gl = torch.autograd.grad(loss, [x, lam])
        x.grad, lam.grad = gx, gl
        opt_x.step(), opt_l.step()
    return ReconstructionResult(
        candidates=x.detach().cpu().numpy(), y=y.cpu().numpy(), lambdas=lam.detach().cpu().numpy(),
        loss_steps=np.asarray(log["step"], dtype=np.int64), loss=np.asarray(log["loss"]),
        kkt_loss=np.asarray(log["kkt"]), bound_loss=np.asarray(log["bound"]), steps=steps,
        seconds=time.perf_counter() - started)
