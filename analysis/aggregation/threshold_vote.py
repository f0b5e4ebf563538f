"""Threshold vote: a task gets the positive label once ``threshold`` answers fall in a set.

Salient ImageNet (Singla & Feizi §3.3): *spurious* when >= 3 of 5 answers are ``separate_object`` or
``background``, else *core*. An incomplete task gets a label only when the missing answers can
no longer change it; otherwise ``None``. With an even number of answers split evenly, ``tie``.
"""
from __future__ import annotations

from collections.abc import Collection

import attrs
import numpy as np
import pandas as pd

from analysis.aggregation.counts import answer_counts
from analysis.aggregation.majority_vote import check_answers

__all__ = ["ThresholdVote"]


@attrs.define
class ThresholdVote:
    positive_values: Collection[str]
    """Answer values that count for the positive label."""

    threshold: int = 3
    """Positive answers needed for the positive label."""

    wanted: int = 5
    """Answers a task is meant to get."""

    positive: str = "spurious"
    negative: str = "core"

    counts: Collection[str] = ()
    """Answer values that also get a ``count_<value>`` column."""

    table_: pd.DataFrame = attrs.field(init=False)
    labels_: pd.Series = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.threshold <= self.wanted:
            raise ValueError(f"threshold must be within 1..wanted ({self.wanted}), got {self.threshold}")

    def fit(self, answers: pd.DataFrame) -> "ThresholdVote":
        data = check_answers(answers)
        hits = data["label"].isin(list(self.positive_values))
        grouped = pd.DataFrame({"task": data["task"], "hit": hits}).groupby("task")["hit"]
        n = grouped.size()
        pos = grouped.sum().astype(int)
        neg = n - pos
        complete = n >= self.wanted
        missing = (self.wanted - n).clip(lower=0)
        decided_pos = pos >= self.threshold
        decided_neg = pos + missing < self.threshold
        label = pd.Series(
            np.where(decided_pos, self.positive, np.where(decided_neg, self.negative, None)).astype(object),
            index=n.index, dtype=object,
        )
        table = pd.DataFrame({
            "label": label, "tie": complete & (pos == neg), "complete": complete, "n_answers": n,
            f"n_{self.positive}": pos, f"n_{self.negative}": neg,
        })
        table.index.name = "task"
        if self.counts:
            table = table.join(answer_counts(answers, tuple(self.counts)), how="left")
        self.table_ = table
        self.labels_ = table["label"].rename("agg_label")
        return self

    def fit_predict(self, answers: pd.DataFrame) -> pd.Series:
        return self.fit(answers).labels_
