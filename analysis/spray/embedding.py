"""kNN affinity graph and spectral embedding."""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh


def knn_affinity(distances: np.ndarray, k: int = 10) -> sp.csr_matrix:
    """Binary kNN graph symmetrized as ``(A + A^T) / 2``.

    Parameters
    ----------
    distances : ndarray, shape (N, N)
        Pairwise distances; ``inf`` marks pairs that were not computed (pruned), and each row
        needs at least k finite ones.
    k : int
        Neighbours per point (self excluded); clipped to N - 1.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (N, N)
    """
    d = np.array(distances, dtype=np.float64)
    n = len(d)
    k = min(k, n - 1)
    np.fill_diagonal(d, np.inf)
    neighbours = np.argsort(d, axis=1, kind="stable")[:, :k]
    short = np.flatnonzero(~np.isfinite(np.take_along_axis(d, neighbours, axis=1)).all(axis=1))
    if len(short):
        raise ValueError(f"row {short[0]} has fewer than k={k} finite distances (were too few pairs computed?)")
    rows = np.repeat(np.arange(n), k)
    a = sp.csr_matrix((np.ones(n * k), (rows, neighbours.ravel())), shape=(n, n))
    return ((a + a.T) / 2).tocsr()


def normalized_affinity(affinity: sp.spmatrix) -> sp.csr_matrix:
    """``D^-1/2 A D^-1/2`` with D the degree matrix."""
    degree = np.asarray(affinity.sum(axis=1)).ravel()
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-300)), 0.0)
    scale = sp.diags(inv_sqrt)
    return (scale @ affinity @ scale).tocsr()


def spectral_embedding(affinity: sp.spmatrix, n_eigval: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Leading eigenvectors of the normalized affinity.

    Parameters
    ----------
    affinity : sparse matrix, shape (N, N)
        Symmetric affinity (see :func:`knn_affinity`).
    n_eigval : int
        Number of leading eigenvectors; clipped to N.

    Returns
    -------
    eigenvalues : ndarray, shape (n_eigval,)
        ``1 - lambda`` in ascending order (0 for each connected component).
    embedding : ndarray, shape (N, n_eigval)
        Matching eigenvectors as columns.
    """
    m = normalized_affinity(affinity)
    n = m.shape[0]
    n_eigval = min(n_eigval, n)
    if n_eigval < n - 1:
        values, vectors = eigsh(m, k=n_eigval, which="LA", v0=np.ones(n))
    else:
        values, vectors = scipy.linalg.eigh(m.toarray())
    order = np.argsort(-values)[:n_eigval]
    return 1.0 - values[order], vectors[:, order]
