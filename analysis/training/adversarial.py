"""L2 projected gradient descent (PGD) on [0, 1] images."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _per_sample_norm(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))


def l2_pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float, steps: int,
           step_size: float | None = None) -> torch.Tensor:
    """Untargeted L2 PGD adversarial examples (Madry et al.), no random start.

    Parameters
    ----------
    model : nn.Module
        Maps [0, 1] images to logits (normalization included).
    images : Tensor (N, C, H, W) in [0, 1]
    labels : Tensor (N,)
    eps : float
        Radius of the L2 ball around each image (in [0, 1] pixel units).
    steps : int
        Number of gradient steps.
    step_size : float, optional
        Step length; default ``2.5 * eps / steps``.

    Returns
    -------
    Tensor
        Adversarial images in [0, 1] with ``||x_adv - x||_2 <= eps`` per image (detached).
    """
    if eps < 0 or steps < 0:
        raise ValueError("eps and steps must be non-negative")
    if eps == 0 or steps == 0:
        return images.detach()
    step_size = 2.5 * eps / steps if step_size is None else step_size
    images = images.detach()
    delta = torch.zeros_like(images)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(images + delta), labels)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = delta + step_size * grad / _per_sample_norm(grad)
            delta = delta * torch.clamp(eps / _per_sample_norm(delta), max=1.0)
            delta = (images + delta).clamp(0.0, 1.0) - images
    return (images + delta).detach()
