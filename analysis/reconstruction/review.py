"""The crowd's review of reconstructions, per model: was the main object reconstructed, and where is a trigger.

Each reviewed reconstruction has a majority label ("yes": the main object was reconstructed) and
the clicks of the workers who marked a trigger.  Per model (level) the table gives the crowd's
"yes" share beside the reference (the pair's SSIM against a threshold), their agreement, how
often workers clicked, the share of clicks that land on one of the level's trigger boxes (grown by
``margin``), and how often the trigger was *found*: among the reconstructions where it shows, the
median click lies on a box.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.reconstruction.plots import _figure, _png

REQUIRED = ("level", "label", "reference", "clicks", "answers", "boxes", "trigger_shown")
COLUMNS = ["level", "reviewed", "crowd_yes", "reference_yes", "agreement", "answers", "clicks", "click_rate",
           "clicks_in_trigger", "trigger_shown", "found"]


def in_boxes(point: Sequence[float], boxes: Sequence[Sequence[float]], margin: float = 0.05) -> bool:
    """Whether ``point`` (x, y) lies in one of ``boxes`` (x0, y0, x1, y1) grown by ``margin`` (fractions of side)."""
    x, y = float(point[0]), float(point[1])
    return any(x0 - margin <= x <= x1 + margin and y0 - margin <= y <= y1 + margin for x0, y0, x1, y1 in boxes)


def _share(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else np.nan


def review_table(rows: pd.DataFrame, margin: float = 0.05) -> pd.DataFrame:
    """Per level: the crowd's "main object reconstructed" share against the reference, and where it clicked.

    Parameters
    ----------
    rows : DataFrame
        One row per reviewed reconstruction: ``level``, ``label`` (majority "yes"/"no", None for a
        tie or no answers), ``reference`` ("yes"/"no"), ``clicks`` (list of [x, y], one per answer
        that marked a trigger), ``answers`` (answers counted), ``boxes`` (the level's trigger boxes
        as fractions, empty without triggers) and ``trigger_shown`` (a trigger stands out in it).
    margin : float
        Tolerance around the boxes.

    Returns
    -------
    DataFrame
        One row per level (in first-seen order), columns :data:`COLUMNS`; shares are NaN where
        nothing was counted (``clicks_in_trigger`` without clicks, ``found`` where no trigger shows).
    """
    missing = [c for c in REQUIRED if c not in rows.columns]
    if missing:
        raise ValueError(f"review rows lack column(s) {', '.join(missing)}")
    bad = set(rows["reference"]) - {"yes", "no"}
    if bad:
        raise ValueError(f"reference must be 'yes' or 'no', got {sorted(map(str, bad))}")
    out = []
    for level, group in rows.groupby("level", sort=False):
        clicks = [(click, boxes) for cs, boxes in zip(group["clicks"], group["boxes"]) for click in cs]
        shown = group[group["trigger_shown"].astype(bool)]
        found = [len(cs) > 0 and in_boxes(np.median(np.asarray(cs, float).reshape(-1, 2), axis=0), boxes, margin)
                 for cs, boxes in zip(shown["clicks"], shown["boxes"])]
        answers = int(group["answers"].sum())
        out.append({
            "level": level, "reviewed": len(group),
            "crowd_yes": _share(group["label"] == "yes"), "reference_yes": _share(group["reference"] == "yes"),
            "agreement": _share(group["label"] == group["reference"]),
            "answers": answers, "clicks": len(clicks), "click_rate": len(clicks) / answers if answers else np.nan,
            "clicks_in_trigger": _share(in_boxes(c, b, margin) for c, b in clicks),
            "trigger_shown": _share(group["trigger_shown"].astype(bool)), "found": _share(found),
        })
    return pd.DataFrame(out, columns=COLUMNS)


def review_plot(table: pd.DataFrame) -> bytes:
    """Bars per level: crowd "main object" share, the SSIM reference, and clicks on the trigger (PNG)."""

    fig = _figure(6.5, 3.2)
    ax = fig.subplots()
    x = np.arange(len(table))
    for offset, column, label in ((-0.27, "crowd_yes", "crowd: main object reconstructed"),
                                  (0.0, "reference_yes", "reference (SSIM)"),
                                  (0.27, "clicks_in_trigger", "clicks on a trigger")):
        ax.bar(x + offset, table[column].fillna(0).to_numpy(), width=0.26, label=label)
    ax.set_xticks(x, table["level"].tolist())
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share")
    ax.set_title("Was the main object reconstructed? Where is a trigger?")
    ax.legend(fontsize=8)
    return _png(fig)


def fraction_box(box: Sequence[int], size: int) -> list[float]:
    """A pixel box (x0, y0, x1, y1) as fractions of the image side (for click checks)."""
    return [round(int(v) / size, 4) for v in box]


def upscaled(image: np.ndarray, pixels: int = 160) -> np.ndarray:
    """A [0, 1] grey reconstruction as a uint8 picture scaled up to about ``pixels`` (nearest neighbour)."""
    scale = max(1, pixels // image.shape[0])
    return np.kron((np.clip(image, 0, 1) * 255).round().astype(np.uint8), np.ones((scale, scale), np.uint8))


def best_matched(result: dict, side: int, k: int) -> list[tuple[int, int]]:
    """(train index, reconstruction index) of the ``k`` best-matched training images of one side."""
    members = np.flatnonzero(np.asarray(result["train_labels"]) == side)
    best = members[np.argsort(-np.asarray(result["ssim"])[members], kind="stable")]
    seen, out = set(), []
    for i in best:
        r = int(result["nearest"][i])
        if r not in seen:
            seen.add(r)
            out.append((int(i), r))
        if len(out) == k:
            break
    return out
