"""Inter-annotator agreement of a study: Fleiss' kappa and Krippendorff's alpha (nominal).

Both start from the task x label count matrix (how many workers gave each label to each task).
Fleiss' kappa uses the version for varying numbers of raters per task (tasks with fewer than two
answers are left out); Krippendorff's alpha comes from the ``krippendorff`` package, whose
``value_counts`` input is exactly this matrix.
"""
from __future__ import annotations

from collections.abc import Sequence

import krippendorff
import numpy as np
import pandas as pd

from analysis.aggregation.majority_vote import check_answers

__all__ = ["count_matrix", "fleiss_kappa", "krippendorff_alpha"]


def count_matrix(answers: pd.DataFrame, labels: Sequence[str] | None = None) -> np.ndarray:
    """Tasks x labels matrix of answer counts from a long ``task, worker, label`` table."""
    data = check_answers(answers).dropna(subset=["label"])
    values = list(labels) if labels is not None else sorted(map(str, data["label"].unique()))
    if data.empty:
        return np.zeros((0, len(values)), dtype=np.int64)
    tasks = pd.factorize(data["task"])[0]
    codes = pd.Index(values).get_indexer(data["label"].astype(str))
    if (codes < 0).any():
        raise ValueError(f"answers use label(s) outside {', '.join(values)}")
    counts = np.zeros((tasks.max() + 1, len(values)), dtype=np.int64)
    np.add.at(counts, (tasks, codes), 1)
    return counts


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of a tasks x labels count matrix; NaN when it is undefined.

    kappa = (P_bar - P_e) / (1 - P_e) with P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)) averaged over
    tasks, and P_e = sum_j p_j^2 where p_j is label j's share of all answers.
    """
    counts = np.asarray(counts, dtype=float)
    n = counts.sum(axis=1)
    counts, n = counts[n >= 2], n[n >= 2]
    if len(counts) == 0:
        return float("nan")
    p_i = ((counts**2).sum(axis=1) - n) / (n * (n - 1))
    p_bar = p_i.mean()
    p_j = counts.sum(axis=0) / n.sum()
    p_e = float((p_j**2).sum())
    if np.isclose(p_e, 1.0):
        return float("nan")
    return float((p_bar - p_e) / (1 - p_e))


def krippendorff_alpha(counts: np.ndarray) -> float:
    """Krippendorff's alpha (nominal) of a tasks x labels count matrix; NaN when undefined."""

    counts = np.asarray(counts, dtype=float)
    counts = counts[counts.sum(axis=1) >= 2]
    if len(counts) == 0 or (counts.sum(axis=0) > 0).sum() < 2:
        return float("nan")
    return float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))
