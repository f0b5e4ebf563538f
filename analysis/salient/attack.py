"""Feature attack: normalized gradient ascent on one neural feature r_i(x) (Singla & Feizi §3.2).

x <- clamp(x + step * g / ||g||_2, 0, 1), g = d r_i(x) / dx, ||.||_2 over the whole image; 100
steps. The reference (``viz_utils.feature_attack`` of Singla & Feizi) steps 10 on 224 x 224 images
in [0, 1]; at other sizes the step is scaled by sqrt(pixels / 224^2), so one step changes each
pixel by the same root-mean-square amount (10 / (224 sqrt 3) ~ 0.026) at every image size.
"""
from __future__ import annotations

import math

import torch

#: The reference's L2 step on 224 x 224 images in [0, 1] (its ``eps=500`` argument is unused).
REFERENCE_STEP = 10.0
REFERENCE_SIZE = 224


def reference_step(height: int, width: int) -> float:
    """The reference step scaled to an image of ``height`` x ``width`` pixels."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height} x {width}")
    return REFERENCE_STEP * math.sqrt(height * width / REFERENCE_SIZE ** 2)


def feature_attack(
    handle, images: torch.Tensor, features: torch.Tensor, *, steps: int = 100, step_size: float | None = None,
    batch_size: int = 128,
) -> torch.Tensor:
    """Amplify feature ``features[n]`` in image ``n``; returns images in [0, 1] of the same shape.

    ``step_size`` is the L2 length of one step; ``None`` means :func:`reference_step` of the images' size.
    """
    if step_size is None:
        step_size = reference_step(*images.shape[-2:])
    if steps < 0 or step_size <= 0:
        raise ValueError("steps must be >= 0 and step_size > 0")
    if features.shape != (len(images),):
        raise ValueError(f"need one feature index per image ({len(images)}), got {tuple(features.shape)}")
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].detach().clone().to(handle.device)
        idx = features[start:start + batch_size].long().to(handle.device)
        for _ in range(steps):
            x.requires_grad_(True)
            r = handle.features(x)
            objective = r.gather(1, idx[:, None]).sum()
            (grad,) = torch.autograd.grad(objective, x)
            norm = grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
            x = (x.detach() + step_size * grad / norm).clamp(0, 1)
        out.append(x.detach().cpu())
    return torch.cat(out) if out else images.clone()
