"""The SpRAy study's LRP heatmaps: one streamed, sharded ``lrp`` pass per split of the pool (``ctx.run_pass``),
and the full-resolution relevance of the images a plot or task shows.

The pass keeps the ``size`` x ``size`` heatmaps SpRAy clusters (4 KB an image at 32), so memory grows with
the pool, not with the images' resolution; the few images shown (cluster grids, task examples) get their
full-resolution relevance computed again. Where the dataset knows its planted cues (the built-in benchmark:
small images, and every member's map is read for the simulated crowd's truth) the pass keeps the
full-resolution maps too.
"""
from __future__ import annotations

import attrs
import numpy as np

from annotation.task_kinds.base import Progress, StudyContext, staged
from annotation.task_kinds.benchmark import data_source, model_source


@attrs.frozen
class PoolHeatmaps:
    """The pool's readable images (``pool``; an unreadable image leaves it), their ``labels``, ``heatmaps``
    (N, size, size) and, when kept, ``full`` (N, H, W) relevance at image resolution."""

    pool: object
    labels: np.ndarray
    heatmaps: np.ndarray
    full: np.ndarray | None


def pool_heatmaps(ctx: StudyContext, bench, model_path, pool, *, size: int, full: bool,
                  progress: Progress) -> PoolHeatmaps:
    """LRP heatmaps of ``pool`` (:class:`analysis.spray.benchmark_review.Pool`): one pass per split."""
    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.benchmark_review import Pool

    # deferred: loads scikit-image, scikit-learn, scipy, torch, zennit (torch)
    from analysis.streaming import PassSpec

    splits = [(s, name) for s, name in enumerate(pool.splits) if np.any(pool.split_of == s)]
    parts = []
    for i, (s, name) in enumerate(splits):
        spec = PassSpec(kind="lrp", model=model_source(ctx, ctx.conf["model"], model_path),
                        data=data_source(ctx, bench, name), params={"size": int(size), "full": bool(full)},
                        indices=pool.index[pool.split_of == s])
        parts.append((s, ctx.run_pass(spec, staged(progress, i / len(splits), 1 / len(splits)))))
    readable = Pool(pool.splits, np.concatenate([np.full(len(h.indices), s, np.int64) for s, h in parts]),
                    np.concatenate([h.indices for _, h in parts]).astype(np.int64))
    return PoolHeatmaps(pool=readable, labels=np.concatenate([h.labels for _, h in parts]),
                        heatmaps=np.concatenate([h.heatmaps for _, h in parts]),
                        full=np.concatenate([h.relevance for _, h in parts]) if full else None)


def full_relevance(handle, bench, maps: PoolHeatmaps, positions) -> np.ndarray:
    """Channel-summed relevance (n, H, W) at image resolution of the pool's ``positions``."""
    positions = np.asarray(positions, dtype=np.int64)
    if maps.full is not None:
        return maps.full[positions]
    # deferred: loads scikit-learn, scipy, torch, zennit (torch)
    from analysis.spray.lrp import relevance

    images, labels = maps.pool.tensors(bench, positions)
    return relevance(handle, images, labels).sum(dim=1).numpy().astype(np.float32)
