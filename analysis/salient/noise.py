"""Core and spurious accuracy under Gaussian noise on a region (SPEC §3).

x' = clamp(x + σ·z ⊙ m, 0, 1), z ~ N(0, I). Core accuracy puts the noise on the spurious mask,
spurious accuracy on the core mask.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import pandas as pd
import torch

DEFAULT_SIGMAS = tuple(round(0.05 * i, 2) for i in range(11))


def noisy(images: torch.Tensor, masks: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Add N(0, σ²) noise where ``masks`` (N, H, W) is high, weighted by the soft mask."""
    z = torch.randn(images.shape, generator=generator)
    return (images + sigma * z * masks[:, None]).clamp(0, 1)


@torch.no_grad()
def core_spurious_accuracy(
    handle, images: torch.Tensor, labels: torch.Tensor, core_masks: torch.Tensor, spurious_masks: torch.Tensor,
    *, sigmas: Sequence[float] = DEFAULT_SIGMAS, seed: int = 0, batch_size: int = 256,
) -> pd.DataFrame:
    """A row per σ: ``core_accuracy`` (noise on spurious regions), ``spurious_accuracy`` (on core)."""
    if not (images.shape[0] == len(labels) == len(core_masks) == len(spurious_masks)):
        raise ValueError("images, labels and both masks need the same number of samples")
    if images.shape[-2:] != core_masks.shape[-2:] or core_masks.shape != spurious_masks.shape:
        raise ValueError("masks must be (N, H, W) with the images' size")
    rows = []
    for sigma in sigmas:
        if sigma < 0:
            raise ValueError(f"σ must be >= 0, got {sigma}")
        generator = torch.Generator().manual_seed(seed)
        correct = {"core": 0, "spurious": 0}
        for start in range(0, len(images), batch_size):
            sl = slice(start, start + batch_size)
            y = labels[sl].to(handle.device)
            for name, masks in (("core", spurious_masks), ("spurious", core_masks)):
                x = noisy(images[sl], masks[sl], sigma, generator)
                correct[name] += int((handle.predict(x) == y).sum())
        n = len(images)
        rows.append({"sigma": float(sigma), "core_accuracy": correct["core"] / n,
                     "spurious_accuracy": correct["spurious"] / n, "n": n})
    return pd.DataFrame(rows)


def plot_core_spurious(tables: Mapping[str, pd.DataFrame], title: str = "Core vs spurious accuracy") -> bytes:
    """One PNG: both curves per model against σ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for (model, table), colour in zip(tables.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        ax.plot(table["sigma"], table["core_accuracy"], "-o", color=colour, label=f"{model}: core (noise on spurious)")
        ax.plot(table["sigma"], table["spurious_accuracy"], "--s", color=colour,
                label=f"{model}: spurious (noise on core)")
    ax.set_xlabel("noise σ")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()

