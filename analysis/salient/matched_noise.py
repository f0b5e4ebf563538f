"""Accuracy drops at a matched mean perturbation, σ* (Singla & Feizi App. L).

App. L compares, per class, the accuracy drop from noise on a core feature's region with that on a
spurious feature's region (one feature at a time, Eq. 1 on D(c, i) with that feature's NAM), first at
σ = 0.25. Because NAMs of different features have different norms, the same σ can perturb the two
features' images by different amounts; App. L therefore also measures the drops at σ*: "for the
features whose mean perturbations were smaller, we choose the smallest value of σ (referred to as σ*)
that results in a mean perturbation similar to (or even slightly higher than) that of the other
neural feature (that initially had higher mean perturbation)", and shows both features' drops and
mean perturbations at σ and at σ*.

Here, per class with a core and a spurious feature:

* the pair compared is the core and the spurious feature whose drops at σ differ most (spurious drop
  minus core drop; §5.2 selects the App. L classes by "the accuracy drop due to some spurious feature"
  being higher "than due to some core feature");
* the *mean perturbation* of a feature at σ is the mean over the images of D(c, i) of ‖x' − x‖₂, x' of
  Eq. 1 (clamped to [0, 1], the model's input size and scale), with the same seeded noise z as the
  accuracy (:mod:`analysis.salient.noise`);
* σ* is the smallest σ of ``sigmas`` (≥ σ) at which the feature with the smaller mean perturbation at σ
  reaches the other's mean perturbation at σ; ``matched`` is False when none of ``sigmas`` does (σ* is
  then the largest). Both features are evaluated at σ and σ*, as in App. L's captions.

``drop`` is clean − noisy accuracy on D(c, i) (positive = the noise hurts), as in
:func:`analysis.salient.noise.feature_sensitivity`; App. L prints the negative of it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from analysis.salient.nam import to_float_images
from analysis.salient.noise import PAPER_SIGMA, _image_noise, noise_accuracy

#: σ values searched for σ* (App. L: "multiple values of σ" from σ = 0.25 up).
MATCH_SIGMAS = tuple(round(0.25 + 0.05 * i, 2) for i in range(16))
COLUMNS = ["class", "feature", "label", "n", "sigma", "drop", "mean_perturbation", "sigma_star",
           "drop_at_sigma_star", "mean_perturbation_at_sigma_star", "matched", "lower"]


@torch.no_grad()
def mean_perturbation(images: np.ndarray, indices: np.ndarray, masks: np.ndarray, sigma: float, *, seed: int = 0,
                      batch_size: int = 256) -> float:
    """Mean over ``images[indices]`` of ‖clamp(x + σ z ⊙ m, 0, 1) − x‖₂ (Eq. 1; the z of the accuracy)."""
    if len(indices) == 0:
        return 0.0
    norms = []
    for start in range(0, len(indices), batch_size):
        idx = indices[start:start + batch_size]
        x = to_float_images(images[idx])
        z = torch.stack([_image_noise(tuple(x.shape[1:]), int(i), sigma, seed) for i in idx])
        noisy = (x + sigma * z * torch.from_numpy(masks[start:start + batch_size])[:, None]).clamp(0, 1)
        norms.append((noisy - x).flatten(1).norm(dim=1))
    return float(torch.cat(norms).mean())


def sigma_star(lower: Sequence[float], target: float, sigmas: Sequence[float]) -> tuple[float, bool]:
    """The smallest σ whose mean perturbation ``lower[j]`` (at ``sigmas[j]``, ascending) reaches ``target``;
    (the largest σ, False) when none does."""
    for sigma, value in zip(sigmas, lower):
        if value >= target:
            return float(sigma), True
    return float(sigmas[-1]), False


def matched_drops(handle, dataset, images: np.ndarray, sensitivity: pd.DataFrame, *, sigma: float = PAPER_SIGMA,
                  sigmas: Sequence[float] = MATCH_SIGMAS, seed: int = 0, batch_size: int = 256) -> pd.DataFrame:
    """Two rows (core, spurious feature) per class with both: drops and mean perturbations at σ and σ*.

    ``sensitivity``: :func:`analysis.salient.noise.feature_sensitivity` of the same model at ``sigma``
    (its ``drop`` picks the pair)."""
    sigmas = sorted({float(s) for s in sigmas if s >= sigma} | {float(sigma)})
    drops = {(int(r["class"]), int(r["feature"])): float(r["drop"]) for r in sensitivity.to_dict("records")}
    rows = []
    for cls in sorted(set(dataset.classes("core")) & set(dataset.classes("spurious"))):
        core = max(dataset.features(cls, "core"), key=lambda s: -drops[(cls, s.feature)])
        spurious = max(dataset.features(cls, "spurious"), key=lambda s: drops[(cls, s.feature)])
        pair = (core, spurious)
        at_sigma = [mean_perturbation(images, s.indices, s.nams, sigma, seed=seed, batch_size=batch_size)
                    for s in pair]
        low = int(np.argmin(at_sigma))
        curve = [at_sigma[low] if s == sigma else
                 mean_perturbation(images, pair[low].indices, pair[low].nams, s, seed=seed, batch_size=batch_size)
                 for s in sigmas]
        star, matched = sigma_star(curve, at_sigma[1 - low], sigmas)
        for j, s in enumerate(pair):
            n = len(s.indices)
            clean = noise_accuracy(handle, images, s.indices, s.nams, cls, 0.0, seed=seed, batch_size=batch_size)
            noisy = noise_accuracy(handle, images, s.indices, s.nams, cls, star, seed=seed, batch_size=batch_size)
            rows.append({"class": cls, "feature": s.feature, "label": s.label, "n": n, "sigma": float(sigma),
                         "drop": drops[(cls, s.feature)], "mean_perturbation": at_sigma[j], "sigma_star": star,
                         "drop_at_sigma_star": (clean - noisy) / n,
                         "mean_perturbation_at_sigma_star": mean_perturbation(images, s.indices, s.nams, star,
                                                                              seed=seed, batch_size=batch_size),
                         "matched": matched, "lower": j == low})
    return pd.DataFrame(rows, columns=COLUMNS)
