"""Fisher discriminant score tau of clusterings and the class ranking it gives."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.linalg


def fisher_score(embedding: np.ndarray, labels: np.ndarray, reg: float = 0.0, *, weighted: bool = False) -> float:
    """Largest eigenvalue of ``S_w^-1 S_b`` for one clustering (Anders et al. Eqs. 6-8).

    Parameters
    ----------
    embedding : ndarray, shape (N, E)
    labels : ndarray, shape (N,)
        Cluster per sample.
    reg : float
        Ridge added to S_w, relative to its mean diagonal. Default 0: Anders et al. §2.3 has none
        (Eq. 8 inverts S_w as it is). Only where S_w is singular (e.g. k-means put a whole kNN
        component of identical embedding rows into one cluster) a ridge of 1e-9 of its mean
        diagonal is added so the generalized eigenproblem is defined.
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
    scale = np.trace(s_w) / d + 1e-300
    if reg:
        s_w = s_w + reg * scale * np.eye(d)
    try:
        return float(scipy.linalg.eigh(s_b, s_w, eigvals_only=True)[-1])
    except np.linalg.LinAlgError:  # S_w singular: the smallest ridge that defines the problem
        return float(scipy.linalg.eigh(s_b, s_w + 1e-9 * scale * np.eye(d), eigvals_only=True)[-1])


def rank_by_tau(taus: Mapping) -> list[tuple]:
    """``(class, tau)`` pairs, highest tau (most separable strategies) first."""
    return sorted(taus.items(), key=lambda item: -item[1])
