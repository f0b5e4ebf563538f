"""Iterative FGSM (BIM) robustness: how many steps of size ``eps`` flip each image's prediction."""
from __future__ import annotations

import attrs
import numpy as np
import torch
import torch.nn.functional as F


@attrs.frozen
class FlipSteps:
    """Per image: ``steps`` to flip (0 = already misclassified, ``max_steps + 1`` = never flipped)
    and the true-class logit margin after the last step (larger = more robust)."""

    steps: np.ndarray
    margin: np.ndarray
    max_steps: int


def bim_flip_steps(handle, images: torch.Tensor, labels: torch.Tensor, *, max_steps: int = 10,
                   eps: float = 0.001, batch_size: int = 256) -> FlipSteps:
    """Untargeted BIM, x <- clamp(x + eps * sign(grad CE), 0, 1), on [0, 1] images, batched.

    An image counts as flipped at the first step whose prediction differs from ``labels``; it
    keeps being attacked afterwards (the margin is read after ``max_steps`` steps for all).
    """
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    steps, margins = [], []
    labels = torch.as_tensor(labels, dtype=torch.long)
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].detach().clone().float()
        y = labels[start:start + batch_size]
        with torch.no_grad():
            wrong = handle.logits(x).argmax(1) != y
        flipped = torch.where(wrong, 0, max_steps + 1)
        for step in range(1, max_steps + 1):
            x.requires_grad_(True)
            logits = handle.logits(x)
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x)
            with torch.no_grad():
                x = (x + eps * grad.sign()).clamp_(0, 1)
                now_wrong = handle.logits(x).argmax(1) != y
                flipped = torch.where(now_wrong & (flipped == max_steps + 1), step, flipped)
        with torch.no_grad():
            logits = handle.logits(x)
            true = logits.gather(1, y[:, None])[:, 0]
            other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        steps.append(flipped.cpu().numpy())
        margins.append((true - other).cpu().numpy())
    return FlipSteps(np.concatenate(steps).astype(np.int64), np.concatenate(margins).astype(np.float64), max_steps)


def adv_ranking(flips: FlipSteps) -> tuple[np.ndarray, np.ndarray]:
    """(prototype order, criticism order) of positions into ``flips``.

    Prototypes: most robust first -- not flipped after M steps, then more steps, then larger final
    margin; misclassified images (0 steps) never come before any correctly classified one.
    Criticisms: flipped after one step first, then after more steps (fewest first, lowest margin
    first); never-flipped and misclassified images last.
    """
    steps, margin = flips.steps, flips.margin
    proto = np.lexsort((-margin, -steps))
    never = steps == flips.max_steps + 1
    crit = np.lexsort((margin, steps, never | (steps == 0)))
    return proto, crit
