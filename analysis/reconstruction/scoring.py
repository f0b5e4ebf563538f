"""Scoring reconstructions against the training set (Haim et al. 2022; the seed paper's Score).

For each training image the nearest reconstruction is found on per-image standardised images
downsampled x1/2 (bicubic), i.e. normalised cross-correlation distance, as in the official
``get_evaluation_score_dssim``.  The pair is then compared by SSIM
(``skimage.metrics.structural_similarity``, ``data_range=1``) after min-max rescaling each image
to [0, 1]: the reconstruction plus the training mean (the official scaling; a reconstruction's
overall contrast is not identifiable) and, unlike the official code, the training image too, so
that an exact reconstruction scores 1 even where resizing left a training image short of [0, 1].  The pairs are sorted
by SSIM and the score is the mean of the best ``k`` (10).

``trigger_standout`` measures whether a planted trigger shows in an image: how far the mean of
its box stands out from the ring of pixels around it, in the direction of the trigger's value
(a 0-valued square on a black background does not show; on a garment it does).
"""
from __future__ import annotations

import attrs
import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch.nn import functional as F


@attrs.frozen(eq=False)
class Score:
    """Matching and SSIM of every training image.

    Attributes
    ----------
    nearest : int64 (n,)
        Index of each training image's nearest reconstruction.
    ssim : float64 (n,)
        SSIM of each training image with its nearest reconstruction.
    order : int64 (n,)
        Training indices by decreasing SSIM.
    best_k_mean : float
        Mean SSIM of the best ``k`` pairs.
    k : int
    """

    nearest: np.ndarray
    ssim: np.ndarray
    order: np.ndarray
    best_k_mean: float
    k: int


def _as_stack(images: np.ndarray, name: str) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1] != images.shape[2] or len(images) == 0:
        raise ValueError(f"{name} must be a non-empty stack of square images (n, s, s), got {images.shape}")
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{name} holds non-finite values")
    return images


def standardise(images: np.ndarray) -> np.ndarray:
    """Each image minus its mean, divided by its standard deviation (flat images stay zero)."""
    flat = images.reshape(len(images), -1)
    centred = flat - flat.mean(axis=1, keepdims=True)
    std = centred.std(axis=1, keepdims=True)
    return (centred / np.where(std > 0, std, 1.0)).reshape(images.shape)


def downsample(images: np.ndarray) -> np.ndarray:
    """Bicubic x1/2 downsampling of (n, s, s)."""
    tensor = torch.from_numpy(np.ascontiguousarray(images))[:, None]
    return F.interpolate(tensor, scale_factor=0.5, mode="bicubic", align_corners=False)[:, 0].numpy()


def nearest_reconstruction(train: np.ndarray, recon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each training image its nearest reconstruction (standardised, downsampled x1/2).

    Both stacks must be in the same (e.g. mean-subtracted) space.

    Returns
    -------
    nearest : int64 (n,)
    distance : float64 (n,)
        Squared distance per pixel.
    """
    train, recon = _as_stack(train, "train"), _as_stack(recon, "recon")
    if train.shape[1:] != recon.shape[1:]:
        raise ValueError(f"train images {train.shape[1:]} and reconstructions {recon.shape[1:]} differ in size")
    a = standardise(downsample(standardise(train))).reshape(len(train), -1)
    b = standardise(downsample(standardise(recon))).reshape(len(recon), -1)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    nearest = d2.argmin(axis=1)
    return nearest.astype(np.int64), d2[np.arange(len(a)), nearest] / a.shape[1]


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """Min-max rescale each image to [0, 1] (a constant image becomes 0)."""
    flat = images.reshape(len(images), -1)
    lo, hi = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    return ((flat - lo) / np.where(hi > lo, hi - lo, 1.0)).reshape(images.shape)


def ssim_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of ``a[i]`` with ``b[i]`` (images in [0, 1], ``data_range=1``, 7x7 window or smaller)."""
    a, b = _as_stack(a, "a"), _as_stack(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a {a.shape} and b {b.shape} must have the same shape")
    win = min(7, a.shape[1] - (1 - a.shape[1] % 2))
    if win < 3:
        raise ValueError(f"images of side {a.shape[1]} are too small for SSIM (need >= 3)")
    return np.array([structural_similarity(p, q, data_range=1.0, win_size=win) for p, q in zip(a, b)])


def score(train_images: np.ndarray, mean: np.ndarray, recon: np.ndarray, k: int = 10) -> Score:
    """Match every training image to a reconstruction and score the pairs by SSIM.

    Parameters
    ----------
    train_images : (n, s, s)
        Training images in [0, 1].
    mean : (s, s)
        The training mean the network's inputs were centred with.
    recon : (m, s, s) or (m, s*s)
        Reconstructions in the network's (mean-subtracted) input space.
    k : int
        How many of the best pairs the score averages (all if fewer).

    Returns
    -------
    Score
    """
    train_images = _as_stack(train_images, "train_images")
    size = train_images.shape[1]
    mean = np.asarray(mean, dtype=np.float64)
    if mean.shape != (size, size):
        raise ValueError(f"mean must have shape {(size, size)}, got {mean.shape}")
    recon = np.asarray(recon, dtype=np.float64)
    if recon.ndim == 2 and recon.shape[1] == size * size:
        recon = recon.reshape(len(recon), size, size)
    recon = _as_stack(recon, "recon")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    nearest, _ = nearest_reconstruction(train_images - mean, recon)
    shown = to_unit_range(recon[nearest] + mean)
    ssim = ssim_pairs(to_unit_range(train_images), shown)
    order = np.argsort(-ssim, kind="stable")
    k_eff = min(k, len(ssim))
    return Score(nearest=nearest, ssim=ssim, order=order.astype(np.int64),
                 best_k_mean=float(ssim[order[:k_eff]].mean()), k=k_eff)


def trigger_standout(images: np.ndarray, box, value: float) -> np.ndarray:
    """Per image: ``(mean(box) - mean(ring)) * sign(value - mean(ring))``.

    Parameters
    ----------
    images : (n, s, s) in [0, 1]
    box : (x0, y0, x1, y1)
        The trigger's pixel box (end-exclusive); the ring is the box grown by its own size on every
        side (clipped to the image), minus the box.
    value : float
        The value the trigger sets (or pushes) its box to.

    Returns
    -------
    float64 (n,)
        Near 1 for a white square on black; 0 or below where the box does not stand out towards
        ``value``.
    """
    images = _as_stack(images, "images")
    size = images.shape[1]
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
        raise ValueError(f"box {tuple(box)} does not lie on {size}-pixel images")
    w, h = x1 - x0, y1 - y0
    inner = np.zeros((size, size), bool)
    inner[y0:y1, x0:x1] = True
    outer = np.zeros((size, size), bool)
    outer[max(0, y0 - h):y1 + h, max(0, x0 - w):x1 + w] = True
    ring = outer & ~inner
    if not ring.any():
        raise ValueError(f"box {tuple(box)} covers the whole image")
    box_mean, ring_mean = images[:, inner].mean(axis=1), images[:, ring].mean(axis=1)
    return (box_mean - ring_mean) * np.sign(float(value) - ring_mean)


def shown_trigger(images: np.ndarray, triggers, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Which of ``triggers`` (``[(box, value), ...]``) stands out most in each image, if by ``threshold``.

    Returns
    -------
    index : int64 (n,)
        The trigger shown, -1 where none stands out by ``threshold`` (or there are no triggers).
    standout : float64 (n,)
        Its :func:`trigger_standout` (NaN without triggers).
    """
    images = _as_stack(images, "images")
    if not len(triggers):
        return np.full(len(images), -1, np.int64), np.full(len(images), np.nan)
    table = np.stack([trigger_standout(images, box, value) for box, value in triggers], axis=1)
    best = table.argmax(axis=1)
    standout = table[np.arange(len(images)), best]
    return np.where(standout >= threshold, best, -1).astype(np.int64), standout
