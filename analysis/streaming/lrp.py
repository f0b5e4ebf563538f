"""The SpRAy pass (Anders et al. §2.1): LRP relevance of each image's true class, channel-summed and
downsampled at once.

Only the ``size`` x ``size`` map of each image is kept (what :func:`analysis.spray.preprocess.preprocess`
reduces a full map to); with ``full=True`` also the channel-summed map at image resolution (for small
images whose every map is read again, e.g. the built-in benchmark's truth).
"""
from __future__ import annotations

import attrs
import numpy as np
import torch.nn.functional as F

from analysis.spray.lrp import relevance

from .spec import Batch, PerImagePass, register_pass


def downsample(relevance_maps, size: int) -> np.ndarray:
    """(N, C, H, W) relevance -> (N, size, size) float32: channel sum, then average pooling (in float64)."""
    summed = relevance_maps.double().sum(dim=1, keepdim=True)
    return F.adaptive_avg_pool2d(summed, size)[:, 0].float().numpy()


@attrs.frozen
class Heatmaps:
    """Per readable image, in pass order: dataset ``indices``, ``labels``, ``heatmaps`` (N, size, size) and,
    with ``full=True``, ``relevance`` (N, H, W) at image resolution (else None)."""

    indices: np.ndarray
    labels: np.ndarray
    heatmaps: np.ndarray
    skipped: np.ndarray
    relevance: np.ndarray | None = None

    def of_class(self, cls: int) -> tuple[np.ndarray, np.ndarray]:
        """``(dataset indices, heatmaps)`` of the images labelled ``cls``."""
        rows = self.labels == cls
        return self.indices[rows], self.heatmaps[rows]


@register_pass("lrp")
@attrs.frozen
class LrpPass(PerImagePass):
    """``size``: side of the kept heatmaps (32 by default; Anders et al. §2.1 cluster downsampled maps);
    ``full``: keep the image-resolution maps too."""

    result = Heatmaps
    size: int = attrs.field(default=32, validator=attrs.validators.ge(1))
    full: bool = False

    @property
    def forward_only(self) -> bool:
        return False

    def image_arrays(self, handle, batch: Batch) -> dict[str, np.ndarray]:
        rel = relevance(handle, batch.images, batch.labels, batch_size=len(batch.images))
        arrays = {"heatmaps": downsample(rel, self.size)}
        if self.full:
            arrays["relevance"] = rel.sum(dim=1).float().numpy()
        return arrays
