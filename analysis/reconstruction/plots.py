"""PNG figures of reconstruction results (matplotlib, Agg backend): pairs, loss curves, accuracy vs SSIM."""
from __future__ import annotations

import io

import numpy as np


def _figure(width: float, height: float):
    # deferred: loads matplotlib
    import matplotlib

    matplotlib.use("Agg", force=False)
    # deferred: loads matplotlib
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def pairs_png(result: dict, k: int | None = None) -> bytes:
    """The best ``k`` reconstructions (top row) above their nearest training images, SSIM in titles.

    Parameters
    ----------
    result : dict
        From :func:`~.pipeline.run_reconstruction` (or :func:`~.pipeline.load`).
    k : int, optional
        Number of pairs (default: the result's ``k``).
    """
    order = np.asarray(result["order"])
    k = int(result["k"] if k is None else k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    chosen = order[: min(k, len(order))]
    fig = _figure(1.3 * len(chosen) + 0.6, 3.0)
    axes = fig.subplots(2, len(chosen), squeeze=False)
    for col, i in enumerate(chosen):
        recon = result["candidates"][result["nearest"][i]]
        axes[0, col].imshow(recon, cmap="gray", vmin=0, vmax=1)
        axes[0, col].set_title(f"SSIM {result['ssim'][i]:.2f}", fontsize=8)
        axes[1, col].imshow(result["train_images"][i], cmap="gray", vmin=0, vmax=1)
        marker = " *" if bool(result["triggered"][i]) else ""
        axes[1, col].set_title(f"train {int(i)}{marker}", fontsize=8)
        for row in (0, 1):
            axes[row, col].set_xticks([]), axes[row, col].set_yticks([])
    axes[0, 0].set_ylabel("reconstruction", fontsize=8)
    axes[1, 0].set_ylabel("training image", fontsize=8)
    return _png(fig)


def loss_curves_png(result: dict) -> bytes:
    """Training loss per epoch and reconstruction losses per logged step (log scale)."""
    fig = _figure(9.0, 3.2)
    left, right = fig.subplots(1, 2)
    train = np.asarray(result["train_loss"])
    left.semilogy(np.arange(len(train)), np.maximum(train, 1e-300))
    left.set_xlabel("epoch"), left.set_ylabel("logistic loss"), left.set_title("training", fontsize=9)
    steps = np.asarray(result["rec_loss_steps"])
    for key, label in (("rec_loss", "total"), ("rec_kkt_loss", "KKT term"), ("rec_bound_loss", "penalties")):
        values = np.asarray(result[key])
        right.semilogy(steps, np.maximum(values, 1e-300), label=label)
    right.set_xlabel("step"), right.set_title("reconstruction", fontsize=9), right.legend(fontsize=8)
    return _png(fig)


def accuracy_ssim_png(rows) -> bytes:
    """The seed paper's Fig. 6: clean test accuracy against mean best-k SSIM, one labelled point per model.

    Parameters
    ----------
    rows : iterable of mapping
        Each with ``level``, ``test_accuracy`` and ``best_k_mean`` (a DataFrame's records will do).
    """
    rows = list(rows)
    if not rows:
        raise ValueError("no models to plot")
    fig = _figure(4.8, 3.6)
    ax = fig.subplots()
    for row in rows:
        x, y = float(row["best_k_mean"]), float(row["test_accuracy"])
        ax.scatter([x], [y], s=40)
        ax.annotate(str(row["level"]), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=9)
    ax.set_xlabel("mean SSIM of the best 10 reconstructions")
    ax.set_ylabel("clean test accuracy")
    ax.set_title("Test accuracy vs reconstruction quality", fontsize=10)
    ax.margins(0.2)
    return _png(fig)
