"""SpRAy over a whole data set: LRP per class, one :class:`SprayResult` per class, the tau ranking.

:func:`spray_classes` computes the LRP maps of images in memory; :func:`spray_maps` starts from maps
computed elsewhere (the streamed, sharded ``lrp`` pass of :mod:`analysis.streaming`).

Also the helpers that read a result against known per-image flags (e.g. the planted
cues of the built-in benchmark): :func:`cluster_purity`, :func:`best_cluster`, and the
rule that picks the k shown to people (:func:`display_k`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import attrs
import numpy as np
import torch

from .clustering import DEFAULT_KS
from .lrp import relevance as lrp_relevance
from .pipeline import SprayResult, rank_classes, spray_class

Progress = Callable[[int, int, str], None]

#: Cluster counts :func:`display_k` chooses from.
DISPLAY_KS = range(2, 11)


@attrs.frozen
class ClassSpray:
    """SpRAy of one class.

    Attributes
    ----------
    cls : int
        Class index.
    indices : ndarray of int, shape (N_c,)
        Positions of the analysed images in the images given to :func:`spray_classes`.
    relevance : ndarray of float32, shape (N_c, H, W)
        Channel-summed LRP relevance of the true class: at image resolution from :func:`spray_classes`,
        as given to :func:`spray_maps`.
    result : SprayResult
    """

    cls: int
    indices: np.ndarray
    relevance: np.ndarray
    result: SprayResult


@attrs.frozen
class DatasetSpray:
    """SpRAy of several classes.

    Attributes
    ----------
    classes : dict of int to ClassSpray
    ranking : list of (int, float)
        ``(class, tau)``, highest tau (most separable strategies) first.
    settings : dict
        The settings used (size, metric, n_neighbors, ks, per_class, seed).
    """

    classes: dict
    ranking: list
    settings: dict

    def __getitem__(self, cls: int) -> ClassSpray:
        return self.classes[cls]

    def rank_of(self, cls: int) -> int:
        """1-based position of ``cls`` in :attr:`ranking`."""
        return [c for c, _ in self.ranking].index(cls) + 1


def class_indices(labels: np.ndarray, cls: int, per_class: int | None = None) -> np.ndarray:
    """The first ``per_class`` positions of ``cls`` in ``labels`` (all when None).

    Deterministic; the benchmark's splits are already shuffled, so the first images
    of a class are a random sample of it.
    """
    idx = np.flatnonzero(np.asarray(labels) == cls)
    return idx if per_class is None else idx[:per_class]


def spray_classes(handle, images: torch.Tensor, labels, classes: Iterable[int] | None = None, *,
                  per_class: int | None = None, batch_size: int = 64, progress: Progress | None = None,
                  **options) -> DatasetSpray:
    """LRP relevance and SpRAy for each class of images held in memory, and the classes ranked by tau.

    Parameters
    ----------
    handle : ModelHandle
        The model to explain (relevance of each image's true class).
    images : Tensor, shape (N, 3, H, W)
        Images in [0, 1].
    labels : array-like, shape (N,)
        True class per image.
    classes : iterable of int, optional
        Classes to analyse; default every class present in ``labels``.
    per_class : int, optional
        At most this many images per class (the first ones); default all.
    batch_size : int
        Images per LRP backward pass.
    progress : callable, optional
        ``progress(done, total, message)`` after each step (two steps per class).
    **options
        ``size, normalize, metric, n_neighbors, ks, umap, agglomerative, seed, gw_options, space, weighted_tau``:
        see :func:`spray_maps`.

    Returns
    -------
    DatasetSpray
        Each class's ``indices`` are positions in ``images``, its ``relevance`` at image resolution.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError("images must be a float tensor of shape (N, 3, H, W)")
    labels = _labels(labels, len(images), "images")
    if per_class is not None and per_class < 3:
        raise ValueError(f"per_class must be at least 3 (SpRAy needs 3 heatmaps), got {per_class}")
    classes = sorted(set(labels.tolist())) if classes is None else [int(c) for c in classes]
    chosen = np.concatenate([class_indices(labels, c, per_class) for c in classes] or [np.zeros(0, np.int64)])
    maps = np.zeros((0, *images.shape[2:]), np.float32)
    if len(chosen):
        index = torch.from_numpy(chosen)
        maps = lrp_relevance(handle, images[index], torch.from_numpy(labels[chosen]), batch_size=batch_size)
        maps = maps.sum(dim=1).numpy().astype(np.float32)
    spray = spray_maps(maps, labels[chosen], classes, progress=progress, **options)
    return DatasetSpray(classes={c: attrs.evolve(e, indices=chosen[e.indices]) for c, e in spray.classes.items()},
                        ranking=spray.ranking, settings={**spray.settings, "per_class": per_class})


def spray_maps(maps, labels, classes: Iterable[int] | None = None, *, size: int | None = None, normalize: str = "none",
               metric: str = "euclidean", n_neighbors: int = 10, ks: Iterable[int] = DEFAULT_KS, umap: bool = True,
               agglomerative: bool = True, seed: int = 0, gw_options: Mapping | None = None, space: str = "embedding",
               weighted_tau: bool = False, progress: Progress | None = None) -> DatasetSpray:
    """SpRAy for each class from relevance maps already computed, and the classes ranked by tau.

    Parameters
    ----------
    maps : array-like, shape (N, H, W)
        Channel-summed relevance of each image's true class, at any resolution of at least ``size``
        (e.g. the ``size`` x ``size`` heatmaps of the streamed ``lrp`` pass; full-resolution maps
        with ``size=None``).
    labels : array-like, shape (N,)
        True class per map.
    classes : iterable of int, optional
        Classes to analyse (all their maps); default every class present in ``labels``.
    size, normalize, metric, n_neighbors, ks, umap, agglomerative, seed, gw_options, space, weighted_tau
        Passed to :func:`analysis.spray.pipeline.spray_class`.
    progress : callable, optional
        ``progress(done, total, message)`` after each step (two steps per class).

    Returns
    -------
    DatasetSpray
        Each class's ``indices`` are rows of ``maps``, its ``relevance`` those rows.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W) relevance, got shape {maps.shape}")
    labels = _labels(labels, len(maps), "maps")
    classes = sorted(set(labels.tolist())) if classes is None else [int(c) for c in classes]
    missing = [c for c in classes if not np.any(labels == c)]
    if missing:
        raise ValueError(f"no images of class(es) {missing}")
    ks = list(ks)
    total, done = 2 * len(classes), 0
    out: dict[int, ClassSpray] = {}
    for cls in classes:
        idx = np.flatnonzero(labels == cls)
        if len(idx) < 3:
            raise ValueError(f"class {cls} has {len(idx)} images; SpRAy needs at least 3")
        done += 1
        if progress is not None:
            progress(done, total, f"class {cls}: SpRAy on {len(idx)} heatmaps")
        result = spray_class(maps[idx], size=size, normalize=normalize, metric=metric, n_neighbors=n_neighbors, ks=ks,
                             agglomerative=agglomerative, umap=umap, seed=seed, gw_options=gw_options,
                             space=space, weighted_tau=weighted_tau)
        out[cls] = ClassSpray(cls=cls, indices=idx, relevance=maps[idx], result=result)
        done += 1
        if progress is not None:
            progress(done, total, f"class {cls}: tau {result.tau:.3g}")
    settings = {"size": size, "normalize": normalize, "metric": metric, "n_neighbors": n_neighbors, "ks": ks,
                "per_class": None, "seed": seed, "gw_options": dict(gw_options or {}), "space": space,
                "weighted_tau": weighted_tau}
    return DatasetSpray(classes=out, ranking=rank_classes({c: s.result for c, s in out.items()}),
                        settings=settings)


def _labels(labels, n: int, what: str) -> np.ndarray:
    labels = np.asarray(torch.as_tensor(np.asarray(labels)).cpu()).reshape(-1)
    if len(labels) != n:
        raise ValueError(f"{n} {what} but {len(labels)} labels")
    return labels


def cluster_purity(labels, flags, min_size: int = 5) -> tuple[int, float, int]:
    """The cluster with the highest share of flagged images.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        Cluster per image.
    flags : array-like of bool, shape (N,)
        E.g. "carries the watermark".
    min_size : int
        Only clusters with at least this many images count.

    Returns
    -------
    cluster_id : int
    purity : float
        Share of flagged images in that cluster.
    size : int
        Its number of images.
    """
    labels = np.asarray(labels).reshape(-1)
    flags = np.asarray(flags, dtype=bool).reshape(-1)
    if len(labels) != len(flags):
        raise ValueError(f"{len(labels)} cluster labels but {len(flags)} flags")
    best = None
    for cluster in np.unique(labels):
        members = labels == cluster
        size = int(members.sum())
        if size < min_size:
            continue
        purity = float(flags[members].mean())
        if best is None or (purity, size) > (best[1], best[2]):
            best = (int(cluster), purity, size)
    if best is None:
        raise ValueError(f"no cluster has at least {min_size} images")
    return best


def best_cluster(result: SprayResult, flags, ks: Iterable[int] = DISPLAY_KS,
                 min_size: int = 5) -> tuple[int, int, float, int]:
    """The purest flagged cluster over several k-means clusterings.

    Returns
    -------
    k, cluster_id, purity, size
        Ties go to the larger cluster, then the smaller k.
    """
    found = []
    for k in ks:
        if k in result.labels:
            try:
                found.append((k, *cluster_purity(result.labels[k], flags, min_size)))
            except ValueError:
                continue
    if not found:
        raise ValueError(f"no clustering among k={list(ks)} has a cluster of at least {min_size} images")
    return max(found, key=lambda f: (f[2], f[3], -f[0]))


def display_k(result: SprayResult, ks: Iterable[int] = DISPLAY_KS) -> int:
    """The k shown by default: the largest eigengap of the spectral embedding.

    With eigenvalues ``1 - lambda`` in ascending order ``e_1 <= e_2 <= ...``, k clusters
    are well separated when ``e_1 .. e_k`` are near 0 and ``e_{k+1}`` is not, so the
    rule picks the k (among ``ks`` with a clustering, default 2..10) maximizing
    ``e_{k+1} - e_k``; ties go to the smaller k.
    """
    values = np.asarray(result.eigenvalues, dtype=np.float64)
    candidates = [k for k in ks if k in result.labels and k < len(values)]
    if not candidates:
        raise ValueError(f"no clustering among k={list(ks)} fits {len(values)} eigenvalues")
    gaps = [values[k] - values[k - 1] for k in candidates]
    return candidates[int(np.argmax(gaps))]
