"""Neural activation maps (NAMs) and jet heatmap overlays.

NAM = the feature's channel of the last convolutional block, divided by its per-image maximum,
bilinearly resized to the image size (Singla & Feizi §3.2).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def neural_activation_maps(maps: torch.Tensor, features: torch.Tensor | int, size: tuple[int, int]) -> torch.Tensor:
    """NAMs (N, H, W) in [0, 1] from last-block maps (N, C, h, w) and one feature index per image."""
    n = maps.shape[0]
    idx = torch.full((n,), int(features)) if isinstance(features, int) else features.long()
    if idx.shape != (n,):
        raise ValueError(f"need one feature index per image ({n}), got shape {tuple(idx.shape)}")
    channel = maps[torch.arange(n), idx.to(maps.device)].float().clamp(min=0)[:, None]
    peak = channel.amax(dim=(2, 3), keepdim=True).clamp(min=1e-12)
    nam = F.interpolate(channel / peak, size=size, mode="bilinear", align_corners=False)
    return nam[:, 0].clamp(0, 1)


_JET = None


def _jet_table() -> np.ndarray:
    global _JET
    if _JET is None:
        # deferred: loads matplotlib
        from matplotlib import colormaps

        _JET = (colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)
    return _JET


def heatmap_overlay(images: np.ndarray, nams: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Jet-coloured NAMs blended over uint8 images (N, H, W, 3) -> uint8 (N, H, W, 3)."""
    if images.shape[:3] != nams.shape:
        raise ValueError(f"images {images.shape} and NAMs {nams.shape} differ in size")
    colours = _jet_table()[np.clip((nams * 255).round(), 0, 255).astype(np.int64)]
    blended = (1 - alpha) * images.astype(np.float32) + alpha * colours
    return np.clip(blended.round(), 0, 255).astype(np.uint8)


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) floats in [0, 1] -> uint8 (N, H, W, 3)."""
    return (images.detach().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def to_float_images(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> (N, 3, H, W) floats in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
