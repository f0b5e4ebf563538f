"""Figures of the Salient study as PNG bytes (matplotlib object API on an Agg canvas, no pyplot state).

* :func:`plot_core_spurious`: core and spurious accuracy against σ, per model;
* :func:`plot_accuracy_drop`: Fig. 6 (top row), the drop against the standard accuracy vs σ;
* :func:`plot_class_curves`: Fig. 6 (bottom row), one curve per class;
* :func:`plot_feature_sensitivity`: Fig. 5, accuracy drop per (class, feature) at one σ, ranked.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

STYLE = {"core": ("-o", "core accuracy (noise on spurious)"), "spurious": ("--s", "spurious accuracy (noise on core)")}
LABEL_COLOURS = {"core": "#4c72b0", "spurious": "#dd8452"}


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _curves(overall: Mapping[str, pd.DataFrame], column: str, ylabel: str, title: str, zero_line: bool) -> bytes:
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    colours = [f"C{i}" for i in range(10)]
    for (model, table), colour in zip(overall.items(), colours * 10):
        for measure, (style, label) in STYLE.items():
            rows = table[table["measure"] == measure]
            if len(rows):
                ax.plot(rows["sigma"], rows[column], style, color=colour, label=f"{model}: {label}")
    if zero_line:
        ax.axhline(0, color="k", lw=0.6)
    else:
        ax.set_ylim(0, 1.02)
    ax.set_xlabel("noise σ")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return figure_png(fig)


def plot_core_spurious(tables: Mapping[str, pd.DataFrame], title: str = "Core vs spurious accuracy") -> bytes:
    """Both accuracies against σ, per model; ``tables``: model -> a table with ``sigma``,
    ``core_accuracy`` and ``spurious_accuracy`` (:func:`~analysis.salient.noise.core_spurious_table`)."""
    long = {model: pd.concat([
        pd.DataFrame({"measure": measure, "sigma": t["sigma"], "accuracy": t[f"{measure}_accuracy"]})
        for measure in STYLE]) for model, t in tables.items()}
    return _curves(long, "accuracy", "accuracy", title, zero_line=False)


def plot_accuracy_drop(overall: Mapping[str, pd.DataFrame],
                       title: str = "Drop against standard accuracy (Fig. 6, top)") -> bytes:
    """Core and spurious accuracy minus the standard (σ = 0) accuracy of the same images, against σ."""
    return _curves(overall, "drop", "accuracy − standard accuracy", title, zero_line=True)


def plot_class_curves(per_class: pd.DataFrame, class_names: Sequence[str], measure: str = "core",
                      title: str | None = None) -> bytes:
    """One curve per class of ``measure`` accuracy against σ (Fig. 6, bottom row)."""
    if measure not in STYLE:
        raise ValueError(f"measure must be core or spurious, got {measure!r}")
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    rows = per_class[per_class["measure"] == measure]
    for cls, group in rows.groupby("class", sort=True):
        ax.plot(group["sigma"], group["accuracy"], "-o", ms=3, label=class_names[int(cls)])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("noise σ")
    ax.set_ylabel(f"{measure} accuracy")
    ax.grid(alpha=0.3)
    ax.set_title(title or f"{measure.capitalize()} accuracy per class (Fig. 6, bottom)")
    if len(rows):
        ax.legend(fontsize=7)
    return figure_png(fig)


def plot_feature_sensitivity(table: pd.DataFrame, class_names: Sequence[str], top: int = 30,
                             title: str | None = None) -> bytes:
    """Accuracy drop per (class, feature), largest first, coloured by the feature's label (Fig. 5)."""
    rows = table.head(top)
    fig = Figure(figsize=(7, 0.6 + 0.25 * max(len(rows), 1)))
    ax = fig.add_subplot()
    names = [f"{class_names[int(c)]} / f{int(f)}" for c, f in zip(rows["class"], rows["feature"])]
    ax.barh(range(len(rows)), 100 * rows["drop"], color=[LABEL_COLOURS[lab] for lab in rows["label"]])
    ax.set_yticks(range(len(rows)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy drop (percentage points)")
    sigma = float(rows["sigma"].iloc[0]) if len(rows) else float("nan")
    ax.set_title(title or f"Single-feature sensitivity at σ = {sigma:g} (Fig. 5)")
    for label, colour in LABEL_COLOURS.items():
        ax.bar(0, 0, color=colour, label=label)
    ax.legend(fontsize=7, loc="lower right")
    return figure_png(fig)
