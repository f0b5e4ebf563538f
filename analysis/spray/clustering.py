"""Clusterings of the spectral embedding (k-means, agglomerative) and its UMAP 2-D view."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans

DEFAULT_KS = range(2, 31)


def _spectral_rows(embedding: np.ndarray, k: int) -> np.ndarray:
    """The first k eigenvector columns, rows normalized to unit length (Ng-Jordan-Weiss)."""
    rows = embedding[:, :k]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


def valid_ks(ks: Iterable[int], n_samples: int, n_dims: int) -> list[int]:
    """Cluster counts usable for n samples and an n_dims embedding (2 <= k < n, k <= dims)."""
    return [int(k) for k in ks if 2 <= k < n_samples and k <= n_dims]


def kmeans_labels(embedding: np.ndarray, ks: Iterable[int] = DEFAULT_KS, seed: int = 0) -> dict[int, np.ndarray]:
    """k-means labels per k on the first k spectral coordinates (row-normalized).

    Parameters
    ----------
    embedding : ndarray, shape (N, E)
        Spectral embedding, leading eigenvector first.
    ks : iterable of int
        Cluster counts; default 2..30 (those that do not fit N or E are skipped).
    seed : int
        k-means random state.

    Returns
    -------
    dict of int to ndarray, shape (N,)
    """
    return {k: KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(_spectral_rows(embedding, k))
            for k in valid_ks(ks, *embedding.shape)}


def agglomerative_labels(embedding: np.ndarray, ks: Iterable[int] = DEFAULT_KS,
                         linkage: str = "ward") -> dict[int, np.ndarray]:
    """Agglomerative clustering labels per k, on the same coordinates as :func:`kmeans_labels`."""
    return {k: AgglomerativeClustering(n_clusters=k, linkage=linkage).fit_predict(_spectral_rows(embedding, k))
            for k in valid_ks(ks, *embedding.shape)}


def umap_2d(embedding: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0) -> np.ndarray:
    """UMAP 2-D coordinates of the embedding, shape (N, 2), for visual inspection."""
    import umap

    n = len(embedding)
    reducer = umap.UMAP(n_components=2, n_neighbors=max(2, min(n_neighbors, n - 1)), min_dist=min_dist,
                        random_state=seed, n_jobs=1, init="spectral" if n > 3 else "random")
    return np.asarray(reducer.fit_transform(embedding), dtype=np.float64)
