"""Majority vote per task, with ties and incomplete tasks reported rather than hidden."""
from __future__ import annotations

from collections.abc import Sequence

import attrs
import pandas as pd

from analysis.aggregation.counts import answer_counts

__all__ = ["MajorityVote"]

REQUIRED_COLUMNS = ("task", "worker", "label")


def check_answers(answers: pd.DataFrame) -> pd.DataFrame:
    """Return the ``task, worker, label`` columns, or raise naming what is missing or repeated."""
    missing = [c for c in REQUIRED_COLUMNS if c not in answers.columns]
    if missing:
        raise ValueError(f"answers table lacks column(s) {', '.join(missing)}; it needs task, worker, label")
    data = answers[list(REQUIRED_COLUMNS)]
    dup = data.duplicated(subset=["task", "worker"])
    if dup.any():
        first = data[dup].iloc[0]
        raise ValueError(f"worker {first['worker']!r} answered task {first['task']!r} more than once")
    return data


@attrs.define
class MajorityVote:
    """The most frequent label per task.

    A task whose top count is shared by several labels is a tie: its label is ``None`` and
    ``tie`` is true. A task with fewer than ``min_votes`` answers is marked incomplete.
    """

    min_votes: int = 1
    """Answers a task needs to count as complete."""

    labels: Sequence[str] | None = None
    """All possible labels, so each gets a count column even when nobody chose it."""

    labels_: pd.Series = attrs.field(init=False)
    table_: pd.DataFrame = attrs.field(init=False)

    def fit(self, answers: pd.DataFrame) -> "MajorityVote":
        data = check_answers(answers)
        values = list(self.labels) if self.labels is not None else sorted(map(str, data["label"].dropna().unique()))
        counts = answer_counts(data, values)
        counts.columns = values
        top = counts.max(axis=1)
        n_top = counts.eq(top, axis=0).sum(axis=1)
        tie = n_top > 1
        label = counts.idxmax(axis=1).astype(object).where(~tie, None) if len(counts) else pd.Series(dtype=object)
        table = pd.DataFrame(
            {"label": label, "tie": tie, "n_answers": counts.sum(axis=1),
             "complete": counts.sum(axis=1) >= self.min_votes}
        )
        table = table.join(counts.add_prefix("count_"))
        table.index.name = "task"
        self.table_ = table
        self.labels_ = table["label"].rename("agg_label")
        return self

    def fit_predict(self, answers: pd.DataFrame) -> pd.Series:
        return self.fit(answers).labels_
