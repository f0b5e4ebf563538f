"""Pairwise distances between preprocessed heatmaps: euclidean and Gromov-Wasserstein."""
from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist, pdist, squareform


def euclidean(heatmaps: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix of flat heatmaps, shape (N, N)."""
    return squareform(pdist(np.asarray(heatmaps, dtype=np.float64), metric="euclidean"))


def grid_distances(side: int) -> np.ndarray:
    """Euclidean distances between the pixel positions of a ``side x side`` grid, normalized to max 1."""
    yy, xx = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    coords = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float64)
    dist = cdist(coords, coords)
    return dist / max(dist.max(), 1e-12)


def gromov_wasserstein(heatmaps: np.ndarray, side: int | None = None) -> np.ndarray:
    """Gromov-Wasserstein distance matrix (POT ``gromov_wasserstein2``), shape (N, N).

    Parameters
    ----------
    heatmaps : ndarray, shape (N, side * side)
        Rows are distributions over the pixel positions (see :func:`preprocess`).
    side : int, optional
        Grid side; inferred from the row length when omitted.

    Notes
    -----
    Slow (one GW problem per pair): downsample to a small grid (e.g. 8x8) first.
    GW compares the spatial structure of the two maps, so it is invariant to
    isometries of the grid (a map and its mirror image are at distance ~0).
    """
    import ot

    h = np.asarray(heatmaps, dtype=np.float64)
    side = side or int(round(np.sqrt(h.shape[1])))
    if side * side != h.shape[1]:
        raise ValueError(f"rows of length {h.shape[1]} are not a {side}x{side} grid")
    cost = grid_distances(side)
    p = h / h.sum(axis=1, keepdims=True)
    n = len(p)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            value = ot.gromov.gromov_wasserstein2(cost, cost, p[i], p[j], loss_fun="square_loss")
            out[i, j] = out[j, i] = max(float(value), 0.0)
    return out


METRICS = {"euclidean": euclidean, "gromov_wasserstein": gromov_wasserstein}


def pairwise(heatmaps: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Distance matrix by name: ``"euclidean"`` or ``"gromov_wasserstein"``."""
    try:
        return METRICS[metric](heatmaps)
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; use one of {sorted(METRICS)}") from None
