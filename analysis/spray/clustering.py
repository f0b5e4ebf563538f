"""Clusterings of the spectral embedding (k-means, agglomerative) and its UMAP 2-D view."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans

DEFAULT_KS = range(2, 31)
#: Coordinates the clusterings run on (see :func:`cluster_space`).
SPACES = ("embedding", "per_k")


def cluster_space(embedding: np.ndarray, k: int, space: str = "embedding") -> np.ndarray:
    """The coordinates that are clustered into k groups, rows normalised to unit length.

    Parameters
    ----------
    embedding : ndarray, shape (N, E)
        Spectral embedding, leading eigenvector first.
    k : int
    space : {"embedding", "per_k"}
        ``"embedding"`` (default): all E eigenvectors (32 by default), the same space for every k,
        as Anders et al. and CoRelAy do (its ``EigenDecomposition`` normalises the rows, then
        k-means runs on them), so the Fisher scores averaged into tau are measured in one space.
        ``"per_k"``: the first k eigenvectors only (Ng, Jordan & Weiss 2002), the classic recipe for
        exactly k clusters and this module's former default.
    """
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    rows = embedding if space == "embedding" else embedding[:, :k]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


def valid_ks(ks: Iterable[int], n_samples: int, n_dims: int) -> list[int]:
    """Cluster counts usable for n samples and an n_dims embedding (2 <= k < n, k <= dims)."""
    return [int(k) for k in ks if 2 <= k < n_samples and k <= n_dims]


def kmeans_labels(embedding: np.ndarray, ks: Iterable[int] = DEFAULT_KS, seed: int = 0,
                  space: str = "embedding") -> dict[int, np.ndarray]:
    """k-means labels per k on the row-normalised spectral embedding (see :func:`cluster_space`).

    Parameters
    ----------
    embedding : ndarray, shape (N, E)
        Spectral embedding, leading eigenvector first.
    ks : iterable of int
        Cluster counts; default 2..30 (those that do not fit N or E are skipped).
    seed : int
        k-means random state.
    space : {"embedding", "per_k"}
        All eigenvectors (default) or the first k per k.

    Returns
    -------
    dict of int to ndarray, shape (N,)
    """
    return {k: KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(cluster_space(embedding, k, space))
            for k in valid_ks(ks, *embedding.shape)}


def agglomerative_labels(embedding: np.ndarray, ks: Iterable[int] = DEFAULT_KS, linkage: str = "ward",
                         space: str = "embedding") -> dict[int, np.ndarray]:
    """Agglomerative clustering labels per k, on the same coordinates as :func:`kmeans_labels`."""
    return {k: AgglomerativeClustering(n_clusters=k, linkage=linkage).fit_predict(cluster_space(embedding, k, space))
            for k in valid_ks(ks, *embedding.shape)}


def umap_2d(embedding: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0) -> np.ndarray:
    """UMAP 2-D coordinates of the embedding, shape (N, 2), for visual inspection."""
    # deferred: loads umap
    import umap

    n = len(embedding)
    reducer = umap.UMAP(n_components=2, n_neighbors=max(2, min(n_neighbors, n - 1)), min_dist=min_dist,
                        random_state=seed, n_jobs=1, init="spectral" if n > 3 else "random")
    return np.asarray(reducer.fit_transform(embedding), dtype=np.float64)
