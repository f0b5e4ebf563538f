"""Aggregation of misclassification-agreement answers (Stock & Cisse §3.1), on plain tables.

An answer's label is ``yes``/``no`` (one predicted class) or, for a top-k task, the ranks the
worker said yes to (``"1+3"``, ``"none"``). An image is **rectified** when one of its shown classes
gets at least ``threshold`` yes answers (paper: 4 of 5).

Tables: :func:`rectified_error_table` (the paper's Table 1), :func:`rectified_topk_table` (both
top-5 protocols of §4), :func:`adversarial_table` (Table 2, with Wilson intervals and the clean
control row).
"""
from __future__ import annotations

import io
import math

import attrs
import numpy as np
import pandas as pd

from analysis.aggregation.majority_vote import check_answers

POSITIVE, NEGATIVE = "rectified", "not_rectified"


def yes_ranks(label) -> frozenset[int]:
    """Ranks (1-based) a worker said yes to: ``yes`` -> {1}, ``no``/``none`` -> {}, ``"1+3"`` -> {1, 3}."""
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return frozenset()
    label = str(label)
    if label == "yes":
        return frozenset({1})
    if label in ("no", "none", ""):
        return frozenset()
    try:
        return frozenset(int(p) for p in label.split("+"))
    except ValueError as exc:
        raise ValueError(f"answer {label!r} is neither yes, no, none nor ranks like 1+3") from exc


def encode_ranks(ranks) -> str:
    ranks = sorted(set(int(r) for r in ranks))
    return "+".join(map(str, ranks)) if ranks else "none"


def rectify(answers: pd.DataFrame, *, threshold: int = 4, wanted: int = 5) -> pd.DataFrame:
    """Per task: ``yes_count`` (most yes answers any shown class got), ``label`` (rectified or not) and
    the usual ``tie``/``complete``/``n_answers`` and ``count_yes``/``count_no`` columns.

    An incomplete task gets a label only once the missing answers cannot change it.
    """
    if not 1 <= threshold <= wanted:
        raise ValueError(f"threshold must be within 1..{wanted}, got {threshold}")
    data = check_answers(answers)
    rows = []
    for task, group in data.groupby("task", sort=True):
        counts: dict[int, int] = {}
        for label in group["label"]:
            for rank in yes_ranks(label):
                counts[rank] = counts.get(rank, 0) + 1
        n = len(group)
        best = max(counts.values(), default=0)
        missing = max(wanted - n, 0)
        if best >= threshold:
            label = POSITIVE
        elif max(counts.values(), default=0) + missing < threshold:
            label = NEGATIVE
        else:
            label = None
        rows.append({"task": task, "label": label, "tie": False, "complete": n >= wanted, "n_answers": n,
                     "yes_count": best, "count_yes": best, "count_no": n - best})
    columns = ["task", "label", "tie", "complete", "n_answers", "yes_count", "count_yes", "count_no"]
    table = pd.DataFrame(rows, columns=columns).set_index("task")
    table["label"] = pd.Series([r["label"] for r in rows], index=table.index, dtype=object)
    return table


def rectified_error(n_images: int, n_errors: int, n_judged: int, n_rectified: int) -> tuple[float, float]:
    """(plain error, rectified error). When only ``n_judged`` of the ``n_errors`` mistakes were shown to
    the crowd, the rectified share among those is applied to all mistakes."""
    if n_images <= 0:
        raise ValueError("no images")
    error = n_errors / n_images
    if n_judged <= 0:
        return error, error
    return error, error * (1 - n_rectified / n_judged)


def rectified_error_table(images: pd.DataFrame) -> pd.DataFrame:
    """Table 1 of the paper from a per-image table with ``model, variant, n_images, n_errors, rectified``
    (one row per judged image; ``n_images``/``n_errors`` repeat the model's totals)."""
    rows = []
    for (model, variant), group in images.groupby(["model", "variant"], sort=True):
        decided = group[group["rectified"].notna()]
        n_images, n_errors = int(group["n_images"].iloc[0]), int(group["n_errors"].iloc[0])
        n_rectified = int(decided["rectified"].astype(bool).sum())
        error, rectified = rectified_error(n_images, n_errors, len(decided), n_rectified)
        rows.append({"model": model, "variant": variant, "images": n_images, "errors": n_errors,
                     "judged": len(decided), "rectified_images": int(decided["rectified"].astype(bool).sum()),
                     "error_percent": round(100 * error, 2), "rectified_error_percent": round(100 * rectified, 2)})
    return pd.DataFrame(rows, columns=["model", "variant", "images", "errors", "judged", "rectified_images",
                                       "error_percent", "rectified_error_percent"])


def yes_histogram(yes_counts: pd.DataFrame, wanted: int = 5) -> pd.DataFrame:
    """Images per number of yes answers (0..wanted), per model and variant (or condition)."""
    keys = [c for c in ("model", "variant") if c in yes_counts.columns]
    rows = []
    for key, group in yes_counts.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        counts = np.bincount(group["yes_count"].astype(int).clip(0, wanted), minlength=wanted + 1)
        for yes, n in enumerate(counts):
            rows.append({**dict(zip(keys, key)), "yes": yes, "images": int(n),
                         "percent": round(100 * n / max(len(group), 1), 2)})
    return pd.DataFrame(rows)


def plot_yes_histogram(histogram: pd.DataFrame) -> bytes:
    # deferred: loads matplotlib
    import matplotlib

    matplotlib.use("Agg")
    # deferred: loads matplotlib
    import matplotlib.pyplot as plt

    keys = [c for c in ("model", "variant") if c in histogram.columns]
    groups = list(histogram.groupby(keys, sort=True)) if keys else [("all", histogram)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / max(len(groups), 1)
    for i, (key, group) in enumerate(groups):
        name = " / ".join(map(str, key if isinstance(key, tuple) else (key,)))
        ax.bar(group["yes"] + (i - (len(groups) - 1) / 2) * width, group["percent"], width=width, label=name)
    ax.set_xlabel("'yes' answers per image")
    ax.set_ylabel("% of images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (well-behaved at 0 and 1 and for small n)."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _percent(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(100 * x, 2)


#: The two top-k protocols (Stock & Cisse §3.1): which mistakes the crowd sees with the model's top-k predictions.
TOPK_PROTOCOLS = {"top1_mistakes": "top-1 mistakes shown with the top-k predictions",
                  "topk_mistakes": "top-k mistakes (truth not in the top k) shown with the top-k predictions"}


def rectified_topk_table(images: pd.DataFrame) -> pd.DataFrame:
    """Rectified top-k error per model and protocol (Stock & Cisse §4: ResNet-101 top-5 6.44 % ->
    1.94 % when its top-1 mistakes are judged, -> 1.37 % when its top-5 mistakes are).

    ``images``: one row per judged image with ``model``, ``protocol`` (:data:`TOPK_PROTOCOLS`),
    ``rectified`` (bool, None while undecided), ``truth_in_topk`` (bool; always False under
    ``topk_mistakes``), and the model's totals repeated: ``n_images``, ``n_errors`` (the mistakes
    the protocol samples from: top-1 mistakes or top-k mistakes) and ``n_topk_errors``.

    An image counts as correct under top-k when its truth is among the k predictions or the crowd
    rectified it; the share of the judged images that stay wrong is applied to all ``n_errors``.
    """
    bad = set(images["protocol"]) - set(TOPK_PROTOCOLS) if len(images) else set()
    if bad:
        raise ValueError(f"unknown top-k protocol(s) {sorted(bad)}; use {', '.join(TOPK_PROTOCOLS)}")
    rows = []
    for (model, protocol), group in images.groupby(["model", "protocol"], sort=True):
        decided = group[group["rectified"].notna()]
        rectified = decided["rectified"].astype(bool)
        in_topk = decided["truth_in_topk"].astype(bool)
        if protocol == "topk_mistakes" and in_topk.any():
            raise ValueError(f"{model}: a top-k mistake cannot have its truth in the top k")
        n_images, n_errors = int(group["n_images"].iloc[0]), int(group["n_errors"].iloc[0])
        n_topk = int(group["n_topk_errors"].iloc[0])
        wrong = int((~rectified & ~in_topk).sum())
        error = n_errors / n_images * wrong / len(decided) if len(decided) else float("nan")
        rows.append({"model": model, "protocol": protocol, "images": n_images, "mistakes_sampled_from": n_errors,
                     "judged": len(decided), "rectified_images": int(rectified.sum()),
                     "topk_error_percent": _percent(n_topk / n_images),
                     "rectified_topk_error_percent": _percent(error)})
    return pd.DataFrame(rows, columns=["model", "protocol", "images", "mistakes_sampled_from", "judged",
                                       "rectified_images", "topk_error_percent", "rectified_topk_error_percent"])


def adversarial_table(images: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 2 (adversarial examples, whole vs LIME explanation) with 95 % Wilson intervals.

    ``images``: one row per judged image and condition (``clean``, ``whole``, ``explanation``) with
    ``rectified`` (bool, None while undecided) and the attack's totals repeated: ``n_images``
    (images attacked) and ``n_errors`` (misclassified after the attack); optional ``yes_count`` and
    ``n_answers`` add the share of single yes answers.

    Rows ``whole`` and ``explanation``: ``top1_error`` on the adversarial images (paper 92.04 %),
    the ``rectified_share`` (images with at least the threshold of yes answers) and the
    ``rectified_error`` = top-1 error x (1 - rectified share) (paper 76.78 % whole, 70.68 %
    explanation); its interval is the top-1 error times the Wilson interval of 1 - rectified
    share. The paper's "turkers agree with 22.01 % (whole) / 30.80 % (explanation) of the
    predictions" cannot be the rectified share (92.04 x (1 - 0.2201) = 71.78, not 76.78): it is
    reported beside as ``yes_answer_percent``, the share of single yes answers. Row ``clean`` (the
    control: unattacked images with their true class) has the shares only.
    """
    rows = []
    for condition in ("whole", "explanation", "clean"):
        group = images[(images["condition"] == condition) & images["rectified"].notna()]
        n, k = len(group), int(group["rectified"].astype(bool).sum()) if len(group) else 0
        share, (low, high) = (k / n if n else float("nan")), wilson_interval(k, n)
        row = {"condition": condition, "judged": n, "rectified_images": k, "rectified_share_percent": _percent(share),
               "rectified_share_ci_low_percent": _percent(low), "rectified_share_ci_high_percent": _percent(high)}
        if {"yes_count", "n_answers"} <= set(group.columns) and n:
            row["yes_answer_percent"] = _percent(group["yes_count"].sum() / max(group["n_answers"].sum(), 1))
        if condition != "clean" and n:
            n_images, n_errors = int(group["n_images"].iloc[0]), int(group["n_errors"].iloc[0])
            error = n_errors / n_images
            e_low, e_high = wilson_interval(n_errors, n_images)
            row.update({"images": n_images, "top1_error_percent": _percent(error),
                        "top1_error_ci_low_percent": _percent(e_low), "top1_error_ci_high_percent": _percent(e_high),
                        "rectified_error_percent": _percent(error * (1 - share)),
                        "rectified_error_ci_low_percent": _percent(error * (1 - high)),
                        "rectified_error_ci_high_percent": _percent(error * (1 - low))})
        rows.append(row)
    columns = ["condition", "images", "judged", "rectified_images", "top1_error_percent",
               "top1_error_ci_low_percent", "top1_error_ci_high_percent", "rectified_error_percent",
               "rectified_error_ci_low_percent", "rectified_error_ci_high_percent", "rectified_share_percent",
               "rectified_share_ci_low_percent", "rectified_share_ci_high_percent", "yes_answer_percent"]
    return pd.DataFrame(rows, columns=columns)


@attrs.define
class Rectify:
    """:func:`rectify` as an aggregator object (``fit(answers).table_``)."""

    threshold: int = 4
    wanted: int = 5
    table_: pd.DataFrame = attrs.field(init=False)

    def fit(self, answers: pd.DataFrame) -> "Rectify":
        self.table_ = rectify(answers, threshold=self.threshold, wanted=self.wanted)
        return self
