"""Core and spurious accuracy under Gaussian noise on a region (Singla & Feizi §5.1, Eq. 2).

x' = clamp(x + σ·z ⊙ m, 0, 1), z ~ N(0, I). On a :class:`~analysis.salient.dataset.SalientDataset`:

* *core accuracy* of class c: on the union of D(c, i) over c's **spurious** features, noise on each
  image's spurious mask; *spurious accuracy*: on the union over c's **core** features, noise on
  the core mask. The two sets differ, so the two accuracies differ at σ = 0 too; a class without
  spurious (core) features has no core (spurious) accuracy (:func:`class_noise_curves`).
* overall curves pooled over those classes and the drop against the standard (σ = 0) accuracy
  of the same images (Fig. 6, :func:`overall_curves`);
* single-feature sensitivity: accuracy on D(c, i) with noise on that feature's NAM only, ranked by
  the drop (Fig. 5, App. I; :func:`feature_sensitivity`, paper σ = 0.25).

Noise for an image is drawn from a generator seeded by (seed, σ, image index), so the same image
gets the same z wherever it is evaluated.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from analysis.salient.nam import to_float_images

DEFAULT_SIGMAS = tuple(round(0.05 * i, 2) for i in range(11))
PAPER_SIGMA = 0.25
#: accuracy measure -> the feature label whose sets it is measured on (noise on that label's mask).
MEASURES = {"core": "spurious", "spurious": "core"}


def _image_noise(shape: tuple[int, ...], index: int, sigma: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(hash((int(seed), round(float(sigma) * 1e6), int(index))) % 2 ** 63)
    return torch.randn(shape, generator=generator)


@torch.no_grad()
def noise_accuracy(handle, images: np.ndarray, indices: np.ndarray, masks: np.ndarray, cls: int, sigma: float,
                   *, seed: int = 0, batch_size: int = 256) -> int:
    """How many of the images ``images[indices]`` (uint8, N × H × W × 3) the model still classifies as
    ``cls`` with noise σ on their ``masks`` (n, H, W)."""
    if sigma < 0:
        raise ValueError(f"σ must be >= 0, got {sigma}")
    if len(indices) != len(masks):
        raise ValueError(f"{len(indices)} images but {len(masks)} masks")
    correct = 0
    for start in range(0, len(indices), batch_size):
        idx = indices[start:start + batch_size]
        x = to_float_images(images[idx])
        if sigma > 0:
            z = torch.stack([_image_noise(tuple(x.shape[1:]), int(i), sigma, seed) for i in idx])
            x = (x + sigma * z * torch.from_numpy(masks[start:start + batch_size])[:, None]).clamp(0, 1)
        correct += int((handle.predict(x).cpu() == cls).sum())
    return correct


def _check_sigmas(sigmas: Sequence[float]) -> list[float]:
    sigmas = [float(s) for s in sigmas]
    if not sigmas or min(sigmas) < 0:
        raise ValueError(f"σ values must be >= 0, got {sigmas}")
    return sigmas if 0.0 in sigmas else [0.0, *sigmas]


def class_noise_curves(handle, dataset, images: np.ndarray, *, sigmas: Sequence[float] = DEFAULT_SIGMAS,
                       seed: int = 0, batch_size: int = 256) -> pd.DataFrame:
    """Per class, measure (``core``/``spurious``) and σ: ``n``, ``correct``, ``accuracy``,
    ``standard_accuracy`` (σ = 0 on the same images) and ``drop`` (accuracy - standard accuracy).

    ``dataset``: a :class:`~analysis.salient.dataset.SalientDataset`; ``images`` uint8 (N, H, W, 3)
    indexed by its dataset indices. σ = 0 is always included."""
    sigmas = _check_sigmas(sigmas)
    rows = []
    for measure, label in MEASURES.items():
        for cls in dataset.classes(label):
            indices, masks = dataset.region(cls, label)
            correct = {s: noise_accuracy(handle, images, indices, masks, cls, s, seed=seed, batch_size=batch_size)
                       for s in sigmas}
            for s in sigmas:
                rows.append({"class": cls, "measure": measure, "noise_on": label, "sigma": s, "n": len(indices),
                             "correct": correct[s], "accuracy": correct[s] / len(indices),
                             "standard_accuracy": correct[0.0] / len(indices),
                             "drop": (correct[s] - correct[0.0]) / len(indices)})
    columns = ["class", "measure", "noise_on", "sigma", "n", "correct", "accuracy", "standard_accuracy", "drop"]
    return pd.DataFrame(rows, columns=columns).sort_values(["measure", "class", "sigma"], ignore_index=True)


def overall_curves(per_class: pd.DataFrame) -> pd.DataFrame:
    """Per measure and σ, pooled over the classes that have it: ``accuracy`` (over images),
    ``class_mean_accuracy``, ``standard_accuracy`` and ``drop`` (Fig. 6, top row)."""
    rows = []
    for (measure, sigma), group in per_class.groupby(["measure", "sigma"], sort=True):
        n, correct = int(group["n"].sum()), int(group["correct"].sum())
        standard = float((group["standard_accuracy"] * group["n"]).sum() / n)
        rows.append({"measure": measure, "sigma": float(sigma), "classes": len(group), "n": n,
                     "accuracy": correct / n, "class_mean_accuracy": float(group["accuracy"].mean()),
                     "standard_accuracy": standard, "drop": correct / n - standard})
    return pd.DataFrame(rows, columns=["measure", "sigma", "classes", "n", "accuracy", "class_mean_accuracy",
                                       "standard_accuracy", "drop"])


def core_spurious_table(overall: pd.DataFrame) -> pd.DataFrame:
    """One row per σ with ``core_accuracy`` and ``spurious_accuracy`` side by side (NaN where absent)."""
    wide = overall.pivot(index="sigma", columns="measure", values="accuracy")
    return pd.DataFrame({"sigma": wide.index.to_numpy(),
                         "core_accuracy": wide.get("core", pd.Series(np.nan, index=wide.index)).to_numpy(),
                         "spurious_accuracy": wide.get("spurious", pd.Series(np.nan, index=wide.index)).to_numpy()})


def feature_sensitivity(handle, dataset, images: np.ndarray, *, sigma: float = PAPER_SIGMA, seed: int = 0,
                        batch_size: int = 256) -> pd.DataFrame:
    """Per (class, feature): accuracy on D(c, i) clean and with noise σ on that feature's NAM, and the
    ``drop`` (clean - noisy, positive = hurt), ranked by the drop, largest first (Fig. 5)."""
    rows = []
    for s in dataset.sets:
        clean = noise_accuracy(handle, images, s.indices, s.nams, s.cls, 0.0, seed=seed, batch_size=batch_size)
        hit = noise_accuracy(handle, images, s.indices, s.nams, s.cls, sigma, seed=seed, batch_size=batch_size)
        n = len(s.indices)
        rows.append({"class": s.cls, "feature": s.feature, "label": s.label, "sigma": float(sigma), "n": n,
                     "clean_accuracy": clean / n, "noisy_accuracy": hit / n, "drop": (clean - hit) / n})
    table = pd.DataFrame(rows, columns=["class", "feature", "label", "sigma", "n", "clean_accuracy",
                                        "noisy_accuracy", "drop"])
    table = table.sort_values(["drop", "class", "feature"], ascending=[False, True, True], ignore_index=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table
