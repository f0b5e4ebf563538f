"""Majority vote settled: the closed form ``top > second + remaining`` (the leader stays ahead whatever follows).

The generic check over any aggregation rule, and the policies live studies use, are in
:mod:`analysis.aggregation.stopping` (``Settled``, ``Predictive``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["majority_settled", "majority_settled_counts"]


def majority_settled(labels: Sequence[str], remaining: int) -> bool:
    """Majority vote: the leading label stays strictly ahead even if all remaining answers go to the runner-up."""
    if remaining <= 0:
        return False
    counts = sorted(pd.Series(list(labels), dtype=object).value_counts().tolist(), reverse=True) + [0, 0]
    return counts[0] > counts[1] + remaining


def majority_settled_counts(counts: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """Vectorised :func:`majority_settled` over a tasks x labels count matrix."""
    ordered = np.sort(np.asarray(counts), axis=1)
    top = ordered[:, -1]
    second = ordered[:, -2] if ordered.shape[1] > 1 else np.zeros_like(top)
    remaining = np.asarray(remaining)
    return (remaining > 0) & (top > second + remaining)
