"""Per-worker quality: agreement with the majority label, accuracy on gold tasks, answer counts.

Pure pandas: the caller passes the answers, the majority labels per task (``None`` for ties) and
the known gold labels per task.
"""
from __future__ import annotations

import pandas as pd

from analysis.aggregation.majority_vote import check_answers

__all__ = ["worker_report", "gold_accuracy"]


def gold_accuracy(answers: pd.DataFrame, gold: pd.Series) -> pd.DataFrame:
    """Per worker: ``gold_answers`` and ``gold_accuracy`` (share equal to ``gold[task]``)."""
    data = check_answers(answers)
    data = data[data["task"].isin(gold.index)]
    correct = data["label"].astype(object).to_numpy() == gold.reindex(data["task"]).astype(object).to_numpy()
    table = pd.DataFrame({"worker": data["worker"].to_numpy(), "correct": correct})
    grouped = table.groupby("worker")["correct"]
    return pd.DataFrame({"gold_answers": grouped.size(), "gold_accuracy": grouped.mean()})


def worker_report(answers: pd.DataFrame, majority: pd.Series, gold: pd.Series | None = None,
                  ds_accuracy: pd.Series | None = None) -> pd.DataFrame:
    """One row per worker: answers, agreement with the majority (tasks without a tie), gold accuracy.

    ``majority`` maps task -> label (``None`` for a tie); ``gold`` maps gold task -> known label;
    ``ds_accuracy`` maps worker -> Dawid-Skene accuracy.
    """
    data = check_answers(answers)
    label = majority.reindex(data["task"]).to_numpy()
    decided = pd.notna(label)
    agree = data["label"].astype(object).to_numpy() == label
    table = pd.DataFrame({"worker": data["worker"].to_numpy(), "decided": decided, "agree": agree & decided})
    grouped = table.groupby("worker")
    report = pd.DataFrame({"answers": grouped.size(), "majority_tasks": grouped["decided"].sum()})
    report["majority_agreement"] = grouped["agree"].sum() / report["majority_tasks"].where(report["majority_tasks"] > 0)
    if gold is not None and len(gold):
        report = report.join(gold_accuracy(answers, gold), how="left")
    else:
        report["gold_answers"] = 0
        report["gold_accuracy"] = float("nan")
    report["gold_answers"] = report["gold_answers"].fillna(0).astype(int)
    report["ds_accuracy"] = ds_accuracy.reindex(report.index) if ds_accuracy is not None else float("nan")
    report.index.name = "worker"
    return report
