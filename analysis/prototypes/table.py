"""The study's Table 3: answer-time filter, accuracy per condition with standard error, bar plot."""
from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import attrs
import numpy as np
import pandas as pd


@attrs.frozen
class TimeFilter:
    """Answers faster than ``min_seconds`` or slower than ``max_seconds`` are discarded (paper: 20 s, 3 min)."""

    min_seconds: float = 20.0
    max_seconds: float | None = 180.0

    def reason(self, seconds: pd.Series) -> pd.Series:
        """"too_fast" / "too_slow" / "" per answer."""
        s = pd.to_numeric(seconds, errors="coerce")
        out = pd.Series("", index=s.index, dtype=object)
        out[s < self.min_seconds] = "too_fast"
        if self.max_seconds is not None:
            out[s > self.max_seconds] = "too_slow"
        out[s.isna()] = "no_time"
        return out


def accuracy_table(answers: pd.DataFrame, time_filter: TimeFilter,
                   conditions: Sequence[tuple[str, str]] = ()) -> tuple[pd.DataFrame, dict[str, int]]:
    """Accuracy per condition after the time filter, and the counts of discarded answers.

    ``answers`` has columns ``condition`` (name), ``title``, ``correct`` (bool) and ``seconds``.
    Returns a table with ``condition, title, accuracy, standard_error`` (both in percent; the
    binomial standard error sqrt(p (1 - p) / n)), ``n_correct`` and ``n_valid``, in the order of
    ``conditions`` (``(name, title)`` pairs; conditions without valid answers get NaN), and
    ``{"total", "valid", "too_fast", "too_slow", "no_time"}``.
    """
    reason = time_filter.reason(answers["seconds"]) if len(answers) else pd.Series(dtype=object)
    counts = {"total": int(len(answers)), "valid": int((reason == "").sum()),
              **{r: int((reason == r).sum()) for r in ("too_fast", "too_slow", "no_time")}}
    valid = answers[reason == ""] if len(answers) else answers
    order = list(conditions) or list(dict.fromkeys(zip(answers["condition"], answers["title"])))
    rows = []
    for name, title in order:
        sub = valid[valid["condition"] == name] if len(valid) else valid
        n = int(len(sub))
        k = int(sub["correct"].astype(bool).sum()) if n else 0
        p = k / n if n else float("nan")
        se = float(np.sqrt(p * (1 - p) / n)) if n else float("nan")
        rows.append({"condition": name, "title": title, "accuracy": 100 * p, "standard_error": 100 * se,
                     "n_correct": k, "n_valid": n})
    return pd.DataFrame(rows, columns=["condition", "title", "accuracy", "standard_error", "n_correct",
                                       "n_valid"]), counts


def _tick_label(title: str, width: int = 14) -> str:
    """A condition's title on short lines ("Adv - Prototypes and Criticisms" -> "Adv" / "Prototypes and" /
    "Criticisms"), so that neighbouring tick labels never overlap."""
    return "\n".join(textwrap.fill(part, width) for part in title.split(" - "))


def accuracy_figure(table: pd.DataFrame, chance: float | None = None,
                    title: str = "Class assignment accuracy per condition"):
    """The bar plot of :func:`plot_accuracy` as a matplotlib figure (the caller closes it).

    The figure widens with the number of conditions (1.3 in per bar, at least 8 in) and the chance legend
    stands outside the axes, where it cannot hide a bar's error bar.
    """
    # deferred: loads matplotlib
    import matplotlib

    matplotlib.use("Agg")
    # deferred: loads matplotlib
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(8.0, 1.3 * len(table)), 4.8))
    pos = np.arange(len(table))
    ax.bar(pos, table["accuracy"].fillna(0), yerr=table["standard_error"].fillna(0), capsize=4,
           color=["#4c72b0" if "Prototypes and" in t else "#dd8452" if "only" in t else "#8c8c8c"
                  for t in table["title"]])
    for x, (acc, n) in enumerate(zip(table["accuracy"], table["n_valid"])):
        ax.text(x, 1, f"n={n}", ha="center", va="bottom", fontsize=8, color="white" if n else "black")
    if chance is not None:
        ax.axhline(100 * chance, color="k", lw=0.8, ls="--", label="chance")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    ax.set_xticks(pos, [_tick_label(t) for t in table["title"]], fontsize=8)
    ax.set_ylabel("accuracy (%) ± s.e.")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_accuracy(table: pd.DataFrame, chance: float | None = None,
                  title: str = "Class assignment accuracy per condition") -> bytes:
    """Bar plot of accuracy (%) per condition with standard-error bars, as PNG bytes."""
    # deferred: loads matplotlib
    import matplotlib.pyplot as plt

    fig = accuracy_figure(table, chance, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
