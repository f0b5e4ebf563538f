"""How many answers of each value a task got, one ``count_<value>`` column per value."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def answer_counts(answers: pd.DataFrame, values: Sequence[str]) -> pd.DataFrame:
    """Counts per task (index) of each of ``values``; unknown values raise ``ValueError``.

    Vectorised (label codes and one ``bincount``): a million answers take well under a second.
    """
    values = list(values)
    labels = answers["label"]
    present = labels.notna().to_numpy()
    labels = labels[present]
    codes = pd.Index(values).get_indexer(labels).astype(np.int64)
    if (codes < 0).any():
        unknown = set(labels[codes < 0].unique())
        raise ValueError(f"answers use value(s) {', '.join(sorted(map(str, unknown)))} outside {', '.join(values)}")
    task_codes, tasks = pd.factorize(answers["task"][present], sort=True)
    width = max(len(values), 1)
    flat = np.bincount(task_codes.astype(np.int64) * width + codes, minlength=len(tasks) * width)
    counts = pd.DataFrame(flat.reshape(len(tasks), width)[:, : len(values)], index=pd.Index(tasks, name="task"),
                          columns=[f"count_{v}" for v in values])
    return counts
