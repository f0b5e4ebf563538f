"""Adaptive early stopping: is a task's label settled whatever its remaining answers say?

Generic over the aggregation rule: every multiset of ``remaining`` further answers is appended to
the current ones as a pseudo-task, all pseudo-tasks are aggregated in one call, and the label is
settled when they all get the same label (no tie, no ``None``). For plain majority vote the closed
form ``top > second + remaining`` gives the same answer (:func:`majority_settled`).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["label_settled", "majority_settled", "majority_settled_counts", "MAX_COMPLETIONS"]

#: Above this many possible completions the check answers "not settled" rather than enumerate.
MAX_COMPLETIONS = 5000


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


def label_settled(labels: Sequence[str], remaining: int, values: Sequence[str],
                  aggregate: Callable[[pd.DataFrame], pd.DataFrame]) -> bool:
    """True when every way the ``remaining`` answers could go leaves the aggregated label unchanged.

    ``aggregate`` maps a long ``task, worker, label`` table to a table with ``label`` (and
    optionally ``tie``) per task, as the task kinds' aggregation does.
    """
    if remaining <= 0 or not values:
        return False
    n_completions = math.comb(remaining + len(values) - 1, remaining)
    if n_completions > MAX_COMPLETIONS:
        return False
    current = list(labels)
    rows = []
    for i, extra in enumerate(itertools.combinations_with_replacement(values, remaining)):
        for j, label in enumerate([*current, *extra]):
            rows.append((i, f"w{j}", label))
    table = aggregate(pd.DataFrame(rows, columns=["task", "worker", "label"]))
    if len(table) != n_completions:
        return False
    outcome = table["label"]
    if outcome.isna().any():
        return False
    if "tie" in table.columns and table["tie"].astype(bool).any():
        return False
    return outcome.astype(str).nunique() == 1
