"""Fisher discriminant score tau of clusterings and the class ranking it gives."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.linalg


def fisher_score(embedding: np.ndarray, labels: np.ndarray, reg: float = 1e-3, *, weighted: bool = False) -> float:
    """Largest eigenvalue of ``S_w^-1 S_b`` for one clustering (Anders et al. Eqs. 6-8).

    Parameters
    ----------
    embedding : ndarray, shape (N, E)
    labels : ndarray, shape (N,)
        Cluster per sample.
    reg : float
        Ridge added to S_w, relative to its mean diagonal (plus a tiny absolute term).
    weighted : bool
        False (default, Eq. 7): ``S_b = sum_k (mu_k - mu)(mu_k - mu)^T``, every cluster counts
        alike, so a small isolated Clever-Hans cluster weighs as much as a big one. True: the
        textbook form with each term weighted by the cluster's size.

    Returns
    -------
    float
        Between- over within-cluster scatter; 0 for fewer than two clusters.
    """
    x = np.asarray(embedding, dtype=np.float64)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if len(classes) < 2:
        return 0.0
    mean = x.mean(axis=0)
    d = x.shape[1]
    s_w = np.zeros((d, d))
    s_b = np.zeros((d, d))
    for c in classes:
        xc = x[labels == c]
        mc = xc.mean(axis=0)
        centred = xc - mc
        s_w += centred.T @ centred
        diff = (mc - mean)[:, None]
        s_b += (len(xc) if weighted else 1) * diff @ diff.T
    s_w += (reg * np.trace(s_w) / d + 1e-12) * np.eye(d)
    return float(scipy.linalg.eigh(s_b, s_w, eigvals_only=True)[-1])


def rank_by_tau(taus: Mapping) -> list[tuple]:
    """``(class, tau)`` pairs, highest tau (most separable strategies) first."""
    return sorted(taus.items(), key=lambda item: -item[1])
