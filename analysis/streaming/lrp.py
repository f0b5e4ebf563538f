"""The SpRAy pass (SPEC §6): LRP relevance of each image's true class, channel-summed and downsampled at once.

Only the ``size`` x ``size`` map of each image is kept (what :func:`analysis.spray.preprocess.preprocess`
reduces a full map to), not the full-resolution relevance.
"""
from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import torch.nn.functional as F

from analysis.spray.lrp import relevance

from .partial import Partial
from .spec import Batch, StreamPass, concatenate, register_pass


def downsample(relevance_maps, size: int) -> np.ndarray:
    """(N, C, H, W) relevance -> (N, size, size) float32: channel sum, then average pooling (in float64)."""
    summed = relevance_maps.double().sum(dim=1, keepdim=True)
    return F.adaptive_avg_pool2d(summed, size)[:, 0].float().numpy()


@register_pass("lrp")
@attrs.frozen
class LrpPass(StreamPass):
    """``size``: side of the kept heatmaps (SPEC §6: 32)."""

    size: int = attrs.field(default=32, validator=attrs.validators.ge(1))

    @property
    def forward_only(self) -> bool:
        return False

    def batch(self, handle, batch: Batch) -> dict[str, np.ndarray]:
        rel = relevance(handle, batch.images, batch.labels, batch_size=len(batch.images))
        return {"indices": batch.indices.numpy(), "labels": batch.labels.cpu().numpy(),
                "heatmaps": downsample(rel, self.size)}

    def combine(self, parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return concatenate([p for p in parts if p])

    def finish(self, merged: Partial) -> "Heatmaps":
        a = merged.arrays
        return Heatmaps(indices=a["indices"], labels=a["labels"], heatmaps=a["heatmaps"], skipped=merged.skipped)


@attrs.frozen
class Heatmaps:
    """Per readable image, in pass order: dataset ``indices``, ``labels`` and ``heatmaps`` (N, size, size)."""

    indices: np.ndarray
    labels: np.ndarray
    heatmaps: np.ndarray
    skipped: np.ndarray

    def of_class(self, cls: int) -> tuple[np.ndarray, np.ndarray]:
        """``(dataset indices, heatmaps)`` of the images labelled ``cls``."""
        rows = self.labels == cls
        return self.indices[rows], self.heatmaps[rows]
