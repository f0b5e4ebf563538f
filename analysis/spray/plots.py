"""SpRAy figures as PNG bytes: eigenvalue spectrum, UMAP view, cluster grid, tau ranking, un-Hans heatmaps.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot state), so
they are safe to make in worker processes and threads.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.salient.nam import heatmap_overlay

DPI = 100


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _colours(n: int) -> np.ndarray:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return cmap(np.arange(n) % cmap.N)


def eigenvalue_plot(eigenvalues, title: str = "Eigenvalues") -> bytes:
    """The spectrum ``1 - lambda`` (ascending): k near-zero values before a gap suggest k clusters."""
    values = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    if len(values) == 0:
        raise ValueError("no eigenvalues to plot")
    fig = Figure(figsize=(5, 3.2))
    ax = fig.add_subplot()
    ax.plot(np.arange(1, len(values) + 1), values, "o-", ms=4)
    ax.set_xlabel("index")
    ax.set_ylabel("1 − λ")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


#: Marker per split in :func:`umap_figure` (the first split filled dots, the next ones outlined shapes).
SPLIT_MARKERS = ("o", "^", "s")


def umap_figure(coords, labels, title: str = "UMAP of the spectral embedding", splits=None,
                split_names: Sequence[str] = ("train", "validation")) -> Figure:
    """2-D scatter of the UMAP coordinates, one colour per cluster (legend with sizes).

    ``splits`` (int per point, optional) marks which split each point comes from (Anders et al.
    Fig. 8, training and validation images embedded together): each split gets its own marker
    (:data:`SPLIT_MARKERS`) and a legend entry with its count.
    """
    coords = np.asarray(coords, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) != len(labels):
        raise ValueError(f"coords must be (N, 2) with one label each, got {coords.shape} and {labels.shape}")
    groups = np.zeros(len(labels), np.int64) if splits is None else np.asarray(splits, dtype=np.int64).reshape(-1)
    if len(groups) != len(labels):
        raise ValueError(f"{len(labels)} points but {len(groups)} split flags")
    if groups.min(initial=0) < 0 or groups.max(initial=0) >= min(len(SPLIT_MARKERS), len(split_names)):
        raise ValueError(f"split flags must lie in 0..{min(len(SPLIT_MARKERS), len(split_names)) - 1}")
    clusters = np.unique(labels)
    colours = _colours(len(clusters))
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    for colour, cluster in zip(colours, clusters):
        members = labels == cluster
        for g in np.unique(groups[members]):
            pick = members & (groups == g)
            ax.scatter(coords[pick, 0], coords[pick, 1], s=10 if g == 0 else 18, marker=SPLIT_MARKERS[g],
                       color=colour, edgecolors="none" if g == 0 else "black", linewidths=0.6,
                       label=f"{cluster} ({int(members.sum())})" if g == groups[members].min() else None)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    legend = ax.legend(title="cluster (size)", fontsize=7, title_fontsize=8, loc="best", markerscale=1.5,
                       ncol=1 if len(clusters) <= 10 else 2)
    if splits is not None:
        ax.add_artist(legend)
        handles = [Line2D([], [], ls="", marker=SPLIT_MARKERS[g], color="grey",
                          markeredgecolor="none" if g == 0 else "black",
                          label=f"{split_names[g]} ({int((groups == g).sum())})") for g in np.unique(groups)]
        ax.legend(handles=handles, title="split", fontsize=7, title_fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def umap_plot(coords, labels, title: str = "UMAP of the spectral embedding", splits=None,
              split_names: Sequence[str] = ("train", "validation")) -> bytes:
    """:func:`umap_figure` as PNG bytes."""
    return _png(umap_figure(coords, labels, title, splits, split_names))


def relevance_to_unit(relevance) -> np.ndarray:
    """Positive relevance divided by each map's maximum: (n, H, W) in [0, 1] for the jet overlay."""
    r = np.clip(np.asarray(relevance, dtype=np.float64), 0, None)
    peak = r.reshape(len(r), -1).max(axis=1)[:, None, None]
    return np.divide(r, peak, out=np.zeros_like(r), where=peak > 0)


def grid_members(labels, per_cluster: int = 6, max_clusters: int = 12) -> np.ndarray:
    """Positions :func:`cluster_grid` shows: the first ``per_cluster`` members of the ``max_clusters``
    largest clusters, in ascending order."""
    labels = np.asarray(labels).reshape(-1)
    if per_cluster < 1:
        raise ValueError(f"per_cluster must be positive, got {per_cluster}")
    clusters, sizes = np.unique(labels, return_counts=True)
    shown = clusters[np.argsort(-sizes, kind="stable")[:max_clusters]]
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_cluster] for c in shown]))


def cluster_grid(images_uint8, relevance, labels, per_cluster: int = 6, title: str = "",
                 max_clusters: int = 12, members=None) -> bytes:
    """One row per cluster (largest first, with its size), example images with their heatmaps.

    Parameters
    ----------
    images_uint8 : ndarray of uint8, shape (n, H, W, 3)
    relevance : ndarray, shape (n, H, W)
        Channel-summed relevance; the positive part is shown as a jet overlay
        (:func:`analysis.salient.nam.heatmap_overlay`).
    labels : ndarray of int, shape (N,)
        Cluster per image of the whole class.
    per_cluster : int
        Examples per row (the first members of each cluster).
    title : str
    max_clusters : int
        Show at most this many (the largest) clusters.
    members : array-like of int, optional
        Positions in ``labels`` of the ``n`` given images (at least :func:`grid_members`); default
        every position (``n == N``).
    """
    images = np.asarray(images_uint8)
    labels = np.asarray(labels).reshape(-1)
    positions = np.arange(len(labels)) if members is None else np.asarray(members, dtype=np.int64).reshape(-1)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images_uint8 must be uint8 (n, H, W, 3), got {images.dtype} {images.shape}")
    if len(positions) != len(images) or np.shape(relevance) != images.shape[:3]:
        raise ValueError("images, relevance and members (or labels) must describe the same n images of the same size")
    row_of = {int(pos): i for i, pos in enumerate(positions)}
    lacking = sorted(set(grid_members(labels, per_cluster, max_clusters).tolist()) - set(row_of))
    if lacking:
        raise ValueError(f"the grid shows positions {lacking[:5]}… whose images were not given (see grid_members)")
    overlays = heatmap_overlay(images, relevance_to_unit(relevance))
    clusters, sizes = np.unique(labels, return_counts=True)
    order = np.argsort(-sizes, kind="stable")[:max_clusters]
    rows = len(order)
    fig = Figure(figsize=(1.3 * per_cluster + 1.2, 1.3 * rows + (0.5 if title else 0.1)))
    axes = fig.subplots(rows, per_cluster, squeeze=False)
    for row, pos in enumerate(order):
        shown = np.flatnonzero(labels == clusters[pos])[:per_cluster]
        for col in range(per_cluster):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < len(shown):
                ax.imshow(overlays[row_of[int(shown[col])]], interpolation="nearest")
        axes[row, 0].set_ylabel(f"{clusters[pos]}\n(n={sizes[pos]})", rotation=0, ha="right", va="center",
                                fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def ranking_plot(ranking: Sequence[tuple], class_names: Sequence[str] | None = None,
                 title: str = "Classes by Fisher discriminant score τ") -> bytes:
    """Horizontal bars of tau per class, highest on top."""
    if not ranking:
        raise ValueError("empty ranking")
    classes = [c for c, _ in ranking]
    taus = np.array([t for _, t in ranking], dtype=np.float64)
    names = [class_names[c] if class_names is not None else str(c) for c in classes]
    fig = Figure(figsize=(5.5, 0.35 * len(ranking) + 1.2))
    ax = fig.add_subplot()
    ax.barh(np.arange(len(ranking))[::-1], taus, color="tab:blue")
    ax.set_yticks(np.arange(len(ranking))[::-1], names, fontsize=8)
    ax.set_xlabel("τ (mean over k)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def heatmap_row(panels: Sequence[tuple[str, np.ndarray]], title: str = "") -> bytes:
    """A row of captioned panels: uint8 (H, W, 3) images as they are, (H, W) maps as signed relevance.

    A relevance map is scaled to its own largest absolute value on the ``bwr`` colour map: red for
    the class, blue against it, white 0 (Anders et al. Figs. 9-10).
    """
    if not panels:
        raise ValueError("heatmap_row needs at least one panel")
    for caption, array in panels:
        a = np.asarray(array)
        if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3 and a.dtype == np.uint8)):
            raise ValueError(f"panel {caption!r}: give a uint8 (H, W, 3) image or an (H, W) map, got "
                             f"{a.dtype} {a.shape}")
    fig = Figure(figsize=(1.7 * len(panels), 2.0 + (0.3 if title else 0)))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (caption, array) in zip(axes, panels):
        a = np.asarray(array)
        if a.ndim == 3:
            ax.imshow(a, interpolation="nearest")
        else:
            peak = max(float(np.abs(a).max()), 1e-12)
            ax.imshow(a.astype(np.float64), cmap="bwr", vmin=-peak, vmax=peak, interpolation="nearest")
        ax.set_title(caption, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)
