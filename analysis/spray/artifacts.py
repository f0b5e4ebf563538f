"""Artifact tests for a SpRAy cluster (Anders et al. §3.2).

A cluster of heatmaps that all point at the same spot suggests an artifact (watermark,
border, ...).  :func:`artifact_mask` turns the cluster's relevance into a pixel mask,
:func:`artifact_patch` cuts the artifact out of the cluster's images, and
:func:`artifact_tests` measures the model's response when the patch is *pasted* into
other classes' images (does it pull them towards the artifact class?) and when it is
*removed* from the class's own images that carry it (inpainted or blurred away: does the class
lose probability?). Δ rank is signed as the paper's tables: positive = toward the class.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

REMOVAL_METHODS = ("inpaint", "blur")
KEEP_RULES = ("mass", "area", "all")


# -- mask and patch -------------------------------------------------------------------------------
def artifact_mask(relevance_maps, quantile: float = 0.95, *, keep: str = "mass") -> np.ndarray:
    """Pixel mask of the spot a cluster's heatmaps agree on.

    Parameters
    ----------
    relevance_maps : array-like, shape (n, H, W)
        Channel-summed relevance of the cluster's images.
    quantile : float
        Pixels above this quantile of the mean map are candidates (0.95: the top 5 %).
    keep : {"mass", "area", "all"}
        Which connected component (8-connectivity) of the candidates to keep: the one
        holding the most relevance (default; for a compact artifact this is also the
        largest), the largest by pixel count, or all of them.

    Returns
    -------
    ndarray of bool, shape (H, W)

    Notes
    -----
    Each map's positive part is scaled to sum 1 before averaging, so images with a
    large logit do not dominate the mean.
    """
    # deferred: loads scikit-image
    from skimage.measure import label

    maps = np.asarray(relevance_maps, dtype=np.float64)
    if maps.ndim != 3 or len(maps) == 0:
        raise ValueError(f"relevance_maps must be a non-empty (n, H, W) array, got shape {maps.shape}")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    if keep not in KEEP_RULES:
        raise ValueError(f"keep must be one of {KEEP_RULES}, got {keep!r}")
    positive = np.clip(maps, 0, None)
    totals = positive.sum(axis=(1, 2), keepdims=True)
    mean = np.divide(positive, totals, out=np.zeros_like(positive), where=totals > 0).mean(axis=0)
    if mean.max() <= 0:
        raise ValueError("the relevance maps hold no positive relevance: no artifact to locate")
    candidates = (mean > np.quantile(mean, quantile)) & (mean > 0)
    if not candidates.any():  # a flat map: keep its maximum
        candidates = mean == mean.max()
    if keep == "all":
        return candidates
    components = label(candidates, connectivity=2)
    ids = np.arange(1, components.max() + 1)
    if keep == "area":
        scores = np.array([(components == i).sum() for i in ids])
    else:
        scores = np.array([mean[components == i].sum() for i in ids])
    return components == ids[int(np.argmax(scores))]


def mask_iou(mask, truth) -> float:
    """Intersection over union of two pixel masks of the same shape (e.g. an isolated artifact and a planted cue)."""
    a, b = np.asarray(mask, dtype=bool), np.asarray(truth, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks of shapes {a.shape} and {b.shape} differ")
    union = int((a | b).sum())
    if union == 0:
        raise ValueError("both masks are empty")
    return float((a & b).sum() / union)


def _check_images(images) -> torch.Tensor:
    x = torch.as_tensor(images, dtype=torch.float32)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(x.shape)}")
    return x


def _check_mask(mask, shape) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(mask, dtype=bool))
    if tuple(m.shape) != tuple(shape[-2:]):
        raise ValueError(f"mask of shape {tuple(m.shape)} does not fit images of size {tuple(shape[-2:])}")
    if not m.any():
        raise ValueError("the artifact mask is empty")
    return m


def artifact_patch(images, mask) -> torch.Tensor:
    """The artifact as it looks in the cluster's images: their per-pixel median inside ``mask``.

    Parameters
    ----------
    images : Tensor, shape (n, 3, H, W)
        The cluster's images in [0, 1].
    mask : ndarray of bool, shape (H, W)

    Returns
    -------
    Tensor, shape (3, H, W)
        Median colour inside the mask, 0 outside.
    """
    x = _check_images(images)
    if len(x) == 0:
        raise ValueError("artifact_patch needs at least one image")
    m = _check_mask(mask, x.shape)
    return x.median(dim=0).values * m


def paste_artifact(images, patch, mask) -> torch.Tensor:
    """Images with ``patch`` written into the ``mask`` pixels, shape (N, 3, H, W)."""
    x = _check_images(images)
    m = _check_mask(mask, x.shape).to(x.dtype)
    patch = torch.as_tensor(patch, dtype=x.dtype)
    if tuple(patch.shape) != tuple(x.shape[1:]):
        raise ValueError(f"patch of shape {tuple(patch.shape)} does not fit images {tuple(x.shape[1:])}")
    return x * (1 - m) + patch * m


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(image, sigma=(0, sigma, sigma), mode="nearest")


def remove_artifact(images, mask, method: str = "inpaint", *, sigma: float = 3.0) -> torch.Tensor:
    """Images with the ``mask`` pixels filled from their surroundings.

    Parameters
    ----------
    images : Tensor, shape (N, 3, H, W)
        Images in [0, 1].
    mask : ndarray of bool, shape (H, W)
    method : {"inpaint", "blur"}
        Biharmonic inpainting (``skimage.restoration.inpaint_biharmonic``) or a Gaussian
        blur (``sigma`` pixels) of the image, used inside the mask only.
    sigma : float
        Blur width for ``method="blur"``.

    Returns
    -------
    Tensor, shape (N, 3, H, W), clipped to [0, 1]
    """
    if method not in REMOVAL_METHODS:
        raise ValueError(f"method must be one of {REMOVAL_METHODS}, got {method!r}")
    x = _check_images(images)
    m = _check_mask(mask, x.shape).numpy()
    out = x.numpy().copy()
    for i, image in enumerate(out):
        if method == "inpaint":
            # deferred: loads scikit-image
            from skimage.restoration import inpaint_biharmonic

            out[i][:, m] = inpaint_biharmonic(image, m, channel_axis=0)[:, m]
        else:
            out[i][:, m] = _blur(image, sigma)[:, m]
    return torch.from_numpy(np.clip(out, 0.0, 1.0))


# -- measuring the effect --------------------------------------------------------------------------
@torch.no_grad()
def _probabilities(handle, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    parts = [torch.softmax(handle.logits(images[s:s + batch_size]).float(), dim=1).cpu()
             for s in range(0, len(images), batch_size)]
    return torch.cat(parts)


def _target_stats(probs: torch.Tensor, target: int) -> dict:
    p = probs[:, target]
    rank = 1 + (probs > p[:, None]).sum(dim=1)  # 1 = the artifact class is the top prediction
    return {"prob": float(p.mean()), "rank": float(rank.float().mean()),
            "predicted": float((probs.argmax(dim=1) == target).float().mean())}


def artifact_effect(handle, before, after, target_class: int, *, batch_size: int = 256) -> dict:
    """How the artifact class's score moves between two versions of the same images.

    Parameters
    ----------
    handle : ModelHandle
        Takes [0, 1] images.
    before, after : Tensor, shape (N, 3, H, W)
        The same images without and with the intervention (paste or removal).
    target_class : int
        The artifact class.

    Returns
    -------
    dict
        ``prob_before``, ``prob_after``, ``delta_prob`` (mean softmax probability of the
        artifact class, after minus before), ``rank_before``, ``rank_after`` (mean rank of the
        class among all classes, 1 = top), ``delta_rank`` (signed as the paper's Tables 3-4:
        ``rank_before - rank_after``, positive = the images moved toward the class),
        ``predicted_before``, ``predicted_after`` (share of images predicted as the
        class) and ``n``.
    """
    before, after = _check_images(before), _check_images(after)
    if before.shape != after.shape:
        raise ValueError(f"before {tuple(before.shape)} and after {tuple(after.shape)} differ in shape")
    if len(before) == 0:
        raise ValueError("artifact_effect needs at least one image")
    if not 0 <= int(target_class) < handle.num_classes:
        raise ValueError(f"target_class must lie in 0..{handle.num_classes - 1}, got {target_class}")
    b = _target_stats(_probabilities(handle, before, batch_size), int(target_class))
    a = _target_stats(_probabilities(handle, after, batch_size), int(target_class))
    return {
        "prob_before": b["prob"], "prob_after": a["prob"], "delta_prob": a["prob"] - b["prob"],
        "rank_before": b["rank"], "rank_after": a["rank"], "delta_rank": b["rank"] - a["rank"],
        "predicted_before": b["predicted"], "predicted_after": a["predicted"], "n": int(len(before)),
    }


def sample_indices(indices, max_images: int, seed: int = 0) -> np.ndarray:
    """At most ``max_images`` of ``indices``, drawn at random without replacement (seeded), ascending.

    Anders et al. §3.2 paste the artifact into images of the other classes drawn at random, not the
    first ones in folder order (which may all come from one or two classes).
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if max_images < 1:
        raise ValueError(f"max_images must be positive, got {max_images}")
    if len(idx) <= max_images:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=max_images, replace=False))


def artifact_tests(handle, images, labels, cls: int, mask, patch, *, affected=None, max_images: int = 500,
                   method: str = "inpaint", seed: int = 0) -> dict:
    """Paste and removal tests of one artifact (Anders et al. §3.2).

    Parameters
    ----------
    handle : ModelHandle
    images : Tensor, shape (N, 3, H, W)
        Images in [0, 1] (e.g. the train or test split).
    labels : array-like, shape (N,)
        True classes.
    cls : int
        The class the artifact belongs to.
    mask : ndarray of bool, shape (H, W)
        See :func:`artifact_mask`.
    patch : Tensor, shape (3, H, W)
        See :func:`artifact_patch`.
    affected : array-like of bool, shape (N,), optional
        The images that carry the artifact (a cluster's images; on the benchmark, the images
        with the planted cue). The removal test inpaints only the images of ``cls`` among them,
        as Anders et al. do; None: every image of ``cls`` (a blunter test: images without the
        artifact dilute the effect).
    max_images : int
        At most this many images per test, drawn at random from each group (:func:`sample_indices`).
    method : {"inpaint", "blur"}
        Removal method, see :func:`remove_artifact`.
    seed : int
        Seed of the draw.

    Returns
    -------
    dict
        ``{"paste": effect, "remove": effect}`` with :func:`artifact_effect` dicts:
        ``paste`` on the images of *other* classes, ``remove`` on the affected images of ``cls``.
        A group without images gives None.
    """
    x = _check_images(images)
    y = np.asarray(labels).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    carriers = np.ones(len(y), bool) if affected is None else np.asarray(affected, dtype=bool).reshape(-1)
    if len(carriers) != len(y):
        raise ValueError(f"{len(y)} images but {len(carriers)} affected flags")
    others = sample_indices(np.flatnonzero(y != cls), max_images, seed)
    own = sample_indices(np.flatnonzero((y == cls) & carriers), max_images, seed + 1)
    out = {"paste": None, "remove": None}
    if len(others):
        before = x[torch.from_numpy(others)]
        out["paste"] = artifact_effect(handle, before, paste_artifact(before, patch, mask), cls)
    if len(own):
        before = x[torch.from_numpy(own)]
        out["remove"] = artifact_effect(handle, before, remove_artifact(before, mask, method), cls)
    return out
