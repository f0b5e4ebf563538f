"""Scoring reconstructions against the training set (seed 000 section 4.3, after Haim et al. 2022).

The default score, ``method="reference"``, is the reference code's
(``nivha/dataset_reconstruction``, ``evaluations.get_evaluation_score_dssim`` with ``vote='mean'``):

1. search: training images and reconstructions, both in the network's mean-subtracted space, are
   downsampled x1/2 (bicubic) and compared by normalised cross-correlation distance;
2. pairing: each training image is paired with the **mean of its closest reconstructions**, those
   whose distance is below 1.1 x the distance of its nearest one (the reference's ``vote='mean'``;
   seed 000 section 4.3: "by computing the mean of the closest reconstructed samples to each
   training data, pairs ... are formed");
3. range: the paired reconstruction plus the training mean is min-max rescaled to [0, 1]; the
   training image stays in its own range (the reference's ``x0 + ds_mean``, here the images in
   [0, 1]);
4. SSIM: ``kornia.metrics.ssim(window_size=3)`` (``common_utils.image.get_ssim_pairs_kornia``): a
   3x3 Gaussian window (sigma 1.5), reflect padding, ``max_val=1``, the map averaged over every
   pixel (:func:`ssim_window3`, a numpy rewrite of it);
5. the pairs are sorted by SSIM and the score is the mean SSIM of the best ``k`` (10).

The reconstructions a person is shown are the reference notebooks' (``reconstruction_mnist.ipynb``:
``find_nearest_neighbour(..., vote='min')``, ``scale``, ``sort_by_metric(sort='ssim')``): each
training image's *nearest* reconstruction, min-max rescaled, sorted by its own window-3 SSIM
(:attr:`Score.nearest_ssim`, :attr:`Score.display_order`).  A mean of several reconstructions is
no image the network produced, and averaging blurs a trigger that sits at different places.

``method="nearest-7x7"`` is the platform's earlier score, kept to compare old results: the nearest
reconstruction only, both images min-max rescaled, scikit-image's SSIM with a 7x7 uniform window.
Its values are higher than the reference's and are not comparable with the papers' figures.

``trigger_standout`` measures whether a planted trigger shows in an image: how far the mean of
its box stands out from the ring of pixels around it, in the direction of the trigger's value
(a 0-valued square on a black background does not show; on a garment it does).
"""
from __future__ import annotations

import attrs
import numpy as np
import torch
from scipy.ndimage import correlate1d
from skimage.metrics import structural_similarity
from torch.nn import functional as F

#: Score methods: the reference code's (default) and the platform's earlier one.
METHODS = ("reference", "nearest-7x7")
#: A reconstruction joins a training image's "closest" set while its distance is below this times
#: the nearest one's (``evaluations.get_evaluation_score_dssim``: ``dists[i, j] / dists[i, 0] < 1.1``).
CLOSEST_RATIO = 1.1
#: kornia's SSIM constants: Gaussian window of std 1.5, K1 = 0.01, K2 = 0.03.
SSIM_SIGMA, SSIM_K1, SSIM_K2 = 1.5, 0.01, 0.03


@attrs.frozen(eq=False)
class Score:
    """Pairing and SSIM of every training image.

    Attributes
    ----------
    nearest : int64 (n,)
        Index of each training image's nearest reconstruction.
    closest : int64 (n,)
        How many reconstructions were averaged into each pair (1 for ``nearest-7x7``).
    paired : float64 (n, s, s)
        The reconstruction each training image is compared with, as shown: in [0, 1].
    ssim : float64 (n,)
        SSIM of each training image with its paired reconstruction.
    order : int64 (n,)
        Training indices by decreasing SSIM.
    nearest_ssim : float64 (n,)
        SSIM of each training image with its nearest reconstruction alone, as shown.
    display_order : int64 (n,)
        Training indices by decreasing ``nearest_ssim``: the best reconstructions to show.
    best_k_mean : float
        Mean SSIM of the best ``k`` pairs.
    k : int
    method : str
        One of :data:`METHODS`.
    """

    nearest: np.ndarray
    closest: np.ndarray
    paired: np.ndarray
    ssim: np.ndarray
    order: np.ndarray
    nearest_ssim: np.ndarray
    display_order: np.ndarray
    best_k_mean: float
    k: int
    method: str = "reference"


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


def search_distances(train: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """NCC distance (squared, per pixel) of every training image to every reconstruction, (n, m).

    Both stacks in the same (mean-subtracted) space; downsampled x1/2 (bicubic), then each image
    standardised (the reference's ``ncc_dist(..., div_dim=True)`` on ``scale_factor=1/2``).
    """
    train, recon = _as_stack(train, "train"), _as_stack(recon, "recon")
    if train.shape[1:] != recon.shape[1:]:
        raise ValueError(f"train images {train.shape[1:]} and reconstructions {recon.shape[1:]} differ in size")
    a = standardise(downsample(standardise(train))).reshape(len(train), -1)
    b = standardise(downsample(standardise(recon))).reshape(len(recon), -1)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0) / a.shape[1]


def nearest_reconstruction(train: np.ndarray, recon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each training image its nearest reconstruction and the distance (:func:`search_distances`).

    Returns
    -------
    nearest : int64 (n,)
    distance : float64 (n,)
        Squared distance per pixel.
    """
    d2 = search_distances(train, recon)
    nearest = d2.argmin(axis=1)
    return nearest.astype(np.int64), d2[np.arange(len(d2)), nearest]


def closest_sets(distances: np.ndarray, ratio: float = CLOSEST_RATIO) -> list[np.ndarray]:
    """Per training image (row), the reconstructions closer than ``ratio`` x its nearest one, nearest first.

    The reference's loop: sort the row, keep the nearest, then each next one while
    ``d_j / d_0 < ratio`` (a nearest distance of 0 keeps the nearest alone).
    """
    out = []
    for row in np.asarray(distances, dtype=np.float64):
        order = np.argsort(row, kind="stable")
        d0 = row[order[0]]
        keep = 1 + int(np.sum(row[order[1:]] < ratio * d0)) if d0 > 0 else 1
        out.append(order[:keep].astype(np.int64))
    return out


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """Min-max rescale each image to [0, 1] (a constant image becomes 0)."""
    flat = images.reshape(len(images), -1)
    lo, hi = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    return ((flat - lo) / np.where(hi > lo, hi - lo, 1.0)).reshape(images.shape)


def _check_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_stack(a, "a"), _as_stack(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a {a.shape} and b {b.shape} must have the same shape")
    return a, b


def ssim_window3(a: np.ndarray, b: np.ndarray, max_val: float = 1.0) -> np.ndarray:
    """SSIM of ``a[i]`` with ``b[i]`` as ``kornia.metrics.ssim(a, b, window_size=3).mean()`` per image.

    The reference's ``get_ssim_pairs_kornia``: a separable 3-tap Gaussian window (std 1.5,
    normalised), reflect padding (``torch``'s "reflect", no edge repeat), C1 = (0.01 max_val)^2,
    C2 = (0.03 max_val)^2, and the SSIM map averaged over all pixels.
    """
    a, b = _check_pairs(a, b)
    if a.shape[1] < 2:
        raise ValueError(f"images of side {a.shape[1]} are too small for a 3x3 window (need >= 2)")
    taps = np.exp(-np.array([-1.0, 0.0, 1.0]) ** 2 / (2 * SSIM_SIGMA ** 2))
    taps /= taps.sum()

    def blur(x):
        return correlate1d(correlate1d(x, taps, axis=1, mode="mirror"), taps, axis=2, mode="mirror")

    c1, c2 = (SSIM_K1 * max_val) ** 2, (SSIM_K2 * max_val) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
                / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2) + 1e-12))
    return ssim_map.reshape(len(a), -1).mean(axis=1)


def ssim_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The earlier score's SSIM: scikit-image, ``data_range=1``, 7x7 uniform window (or smaller)."""
    a, b = _check_pairs(a, b)
    win = min(7, a.shape[1] - (1 - a.shape[1] % 2))
    if win < 3:
        raise ValueError(f"images of side {a.shape[1]} are too small for SSIM (need >= 3)")
    return np.array([structural_similarity(p, q, data_range=1.0, win_size=win) for p, q in zip(a, b)])


def score(train_images: np.ndarray, mean: np.ndarray, recon: np.ndarray, k: int = 10,
          method: str = "reference") -> Score:
    """Pair every training image with a reconstruction and score the pairs by SSIM.

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
    method : str
        ``"reference"`` (the reference code's score, the default) or ``"nearest-7x7"`` (the
        platform's earlier score); see the module docstring.

    Returns
    -------
    Score
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
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
    distances = search_distances(train_images - mean, recon)
    nearest = distances.argmin(axis=1).astype(np.int64)
    shown = to_unit_range(recon[nearest] + mean)
    if method == "reference":
        sets = closest_sets(distances)
        paired = to_unit_range(np.stack([recon[s].mean(axis=0) for s in sets]) + mean)
        ssim = ssim_window3(train_images, paired)
        nearest_ssim = ssim_window3(train_images, shown)
    else:
        sets = [np.array([i]) for i in nearest]
        paired = shown
        ssim = nearest_ssim = ssim_pairs(to_unit_range(train_images), paired)
    order = np.argsort(-ssim, kind="stable").astype(np.int64)
    k_eff = min(k, len(ssim))
    return Score(nearest=nearest, closest=np.array([len(s) for s in sets], np.int64), paired=paired, ssim=ssim,
                 order=order, nearest_ssim=nearest_ssim,
                 display_order=np.argsort(-nearest_ssim, kind="stable").astype(np.int64),
                 best_k_mean=float(ssim[order[:k_eff]].mean()), k=k_eff, method=method)


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
