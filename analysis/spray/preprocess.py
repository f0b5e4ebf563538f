"""Heatmap preprocessing (channel sum, downsample, scale, flatten) and the point sets GW keeps.

Two settings have names (:data:`PREPROCESSING`): ``"full"``, Anders et al. §2.1's own — the maps at
full resolution, unaltered ("we omit the optional preprocessing and rather preserve the complete and
unaltered structural information") — and ``"pooled"``, average-pooled to a small grid and divided by
each map's total relevance (CoRelAy's SpRAy example), which this platform used before and still
needs for Gromov-Wasserstein and for a pass that keeps only small maps.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

NORMALIZATIONS = ("sum", "l1", "none")
#: Named preprocessing settings: keyword arguments of :func:`preprocess` (``size`` None = full resolution).
PREPROCESSING = {"full": {"size": None, "normalize": "none"}, "pooled": {"size": 32, "normalize": "sum"}}


def preprocess(relevance, size: int | None = 32, *, positive: bool = False, normalize: str = "sum") -> np.ndarray:
    """Turn relevance maps into flat rows: channel sum, average-pool to ``size x size``, scale, flatten.

    Parameters
    ----------
    relevance : array-like, shape (N, C, H, W) or (N, H, W)
        Relevance per pixel (and channel).
    size : int or None
        Side of the square output grid (adaptive average pooling); default 32. None: no pooling,
        the maps keep their resolution (the paper's setting, :data:`PREPROCESSING` ``"full"``).
    positive : bool
        Keep only positive relevance.
    normalize : {"sum", "l1", "none"}
        ``"sum"`` (default, CoRelAy's SpRAy example): divide each map by its total relevance (by its
        total absolute relevance where the total is not positive); ``"l1"``: by its total absolute
        relevance; ``"none"``: the raw pooled maps.

    Returns
    -------
    ndarray, shape (N, size * size) or (N, H * W), float64
        Signed rows (unless ``positive``); all-zero maps stay zero.

    Notes
    -----
    There is no shift by a map's minimum (a floor added to every pixel changes the distances);
    Gromov-Wasserstein takes its point sets from each row's positive part
    (:func:`mass_support`).
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    x = torch.as_tensor(np.asarray(relevance), dtype=torch.float64)
    if x.ndim == 4:
        x = x.sum(dim=1)
    if x.ndim != 3:
        raise ValueError(f"expected (N, C, H, W) or (N, H, W), got {tuple(x.shape)}")
    if size is not None:
        x = F.adaptive_avg_pool2d(x.unsqueeze(1), size).squeeze(1)
    x = x.reshape(len(x), -1)
    if positive:
        x = x.clamp(min=0)
    if normalize != "none":
        total, absolute = x.sum(dim=1, keepdim=True), x.abs().sum(dim=1, keepdim=True)
        scale = torch.where(total > 0, total, absolute) if normalize == "sum" else absolute
        x = torch.where(scale > 0, x / scale.clamp(min=1e-300), torch.zeros_like(x))
    return x.numpy()


def mass_support(weights, mass: float = 0.99) -> np.ndarray:
    """Per row, the largest entries that together reach ``mass`` of the row's positive total.

    Pixels are taken from the largest down until the share is reached (Anders et al. §2.2: the
    point set of a heatmap for Gromov-Wasserstein). Rows without positive mass keep every entry.

    Returns
    -------
    ndarray of bool, same shape as ``weights``
    """
    w = np.clip(np.asarray(weights, dtype=np.float64), 0, None)
    if w.ndim != 2:
        raise ValueError(f"weights must be 2-D (N, points), got shape {w.shape}")
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must lie in (0, 1], got {mass}")
    order = np.argsort(-w, axis=1, kind="stable")
    ranked = np.take_along_axis(w, order, axis=1)
    total = ranked.sum(axis=1, keepdims=True)
    before = np.cumsum(ranked, axis=1) - ranked  # mass of the strictly larger pixels
    keep_ranked = (before < mass * total) & (ranked > 0) | (total == 0)
    keep = np.zeros_like(keep_ranked)
    np.put_along_axis(keep, order, keep_ranked, axis=1)
    return keep
