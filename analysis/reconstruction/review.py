"""How often people find the trigger in reconstructions: per trigger level, from crowd labels and clicks.

A reconstruction counts as *found* when its majority label is "yes" and the median of the clicks of
its "yes" answers falls inside the trigger region grown by ``margin`` (a fraction of the image side).
Reconstructions of the clean side are the control: their "yes" share is the false-alarm rate.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

REQUIRED = ("level", "side", "label", "clicks", "box")


def click_in_box(clicks: Sequence[Sequence[float]], box: Sequence[float], margin: float = 0.1) -> bool:
    """Whether the median click lies in ``box`` = (x0, y0, x1, y1) grown by ``margin`` (all in [0, 1])."""
    if len(clicks) == 0:
        return False
    x, y = np.median(np.asarray(clicks, dtype=np.float64).reshape(-1, 2), axis=0)
    x0, y0, x1, y1 = box
    return bool(x0 - margin <= x <= x1 + margin and y0 - margin <= y <= y1 + margin)


def trigger_found_table(rows: pd.DataFrame, margin: float = 0.1) -> pd.DataFrame:
    """Per trigger level: crowd "yes" share and found share on the triggered side, false alarms on the control.

    Parameters
    ----------
    rows : DataFrame
        One row per reviewed reconstruction: ``level`` (trigger kind), ``side`` ("triggered" or
        "control"), ``label`` (majority label "yes"/"no", None for a tie or no answers), ``clicks``
        (list of [x, y] of its "yes" answers), ``box`` (the trigger region as x0, y0, x1, y1) and
        optionally ``visible`` (the trigger shows by its energy, the reference truth).
    margin : float
        Tolerance around the region for the median click.

    Returns
    -------
    DataFrame
        One row per level: ``reviewed`` (triggered-side reconstructions), ``crowd_yes``,
        ``found`` (yes and located), ``visible`` (by energy; NaN without that column),
        ``controls`` and ``control_yes`` (false-alarm share).
    """
    missing = [c for c in REQUIRED if c not in rows.columns]
    if missing:
        raise ValueError(f"review rows lack column(s) {', '.join(missing)}")
    bad_sides = set(rows["side"]) - {"triggered", "control"}
    if bad_sides:
        raise ValueError(f"side must be 'triggered' or 'control', got {sorted(bad_sides)}")
    out = []
    for level, group in rows.groupby("level", sort=False):
        trig = group[group["side"] == "triggered"]
        ctrl = group[group["side"] == "control"]
        yes = trig["label"] == "yes"
        found = [bool(y) and click_in_box(c, b, margin) for y, c, b in zip(yes, trig["clicks"], trig["box"])]
        out.append({
            "level": level, "reviewed": len(trig),
            "crowd_yes": float(yes.mean()) if len(trig) else np.nan,
            "found": float(np.mean(found)) if len(trig) else np.nan,
            "visible": float(trig["visible"].mean()) if "visible" in trig and len(trig) else np.nan,
            "controls": len(ctrl),
            "control_yes": float((ctrl["label"] == "yes").mean()) if len(ctrl) else np.nan,
        })
    return pd.DataFrame(out, columns=["level", "reviewed", "crowd_yes", "found", "visible", "controls",
                                      "control_yes"])


def found_plot(table: pd.DataFrame) -> bytes:
    """Bar chart: found / crowd-yes share per level beside the control's false alarms (PNG)."""
    from analysis.reconstruction.plots import _figure, _png

    fig = _figure(6.0, 3.2)
    ax = fig.subplots()
    x = np.arange(len(table))
    for offset, column, label in ((-0.27, "crowd_yes", "said yes"), (0.0, "found", "found (yes + location)"),
                                  (0.27, "control_yes", "false alarm (clean side)")):
        ax.bar(x + offset, table[column].fillna(0).to_numpy(), width=0.26, label=label)
    ax.set_xticks(x, table["level"].tolist())
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of reconstructions")
    ax.set_title("Does the crowd find the trigger?")
    ax.legend(fontsize=8)
    return _png(fig)


def mask_box(mask: np.ndarray) -> list[float]:
    """The mask's bounding box as fractions of the side (x0, y0, x1, y1)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    side = mask.shape[0]
    return [cols[0] / side, rows[0] / side, (cols[-1] + 1) / side, (rows[-1] + 1) / side]


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
