"""Feature attack: normalized gradient ascent on one neural feature r_i(x) (SPEC §3).

x <- clamp(x + step * g / ||g||_2, 0, 1), g = d r_i(x) / dx; default 100 steps of 10/255.
"""
from __future__ import annotations

import torch


def feature_attack(
    handle, images: torch.Tensor, features: torch.Tensor, *, steps: int = 100, step_size: float = 10 / 255,
    batch_size: int = 128,
) -> torch.Tensor:
    """Amplify feature ``features[n]`` in image ``n``; returns images in [0, 1] of the same shape."""
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
