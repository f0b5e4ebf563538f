"""The predictions pass of misclassification studies (SPEC §4): the top-k classes of every image."""
from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from analysis.misclassification.evidence import misclassified

from .partial import Partial
from .spec import Batch, StreamPass, concatenate, register_pass


@register_pass("predictions")
@attrs.frozen
class PredictionsPass(StreamPass):
    """``k``: classes kept per image, best first (5 serves both top-1 and top-5 studies)."""

    k: int = attrs.field(default=5, validator=attrs.validators.ge(1))

    def batch(self, handle, batch: Batch) -> dict[str, np.ndarray]:
        logits = handle.logits(batch.images).float()
        if self.k > logits.shape[1]:
            raise ValueError(f"k = {self.k} but the model has only {logits.shape[1]} classes")
        return {"indices": batch.indices.numpy(), "labels": batch.labels.cpu().numpy(),
                "topk": logits.topk(self.k, dim=1).indices.cpu().numpy()}

    def combine(self, parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return concatenate([p for p in parts if p])

    def finish(self, merged: Partial) -> "Predictions":
        a = merged.arrays
        return Predictions(indices=a["indices"], labels=a["labels"], topk=a["topk"], skipped=merged.skipped)


@attrs.frozen
class Predictions:
    """Per readable image, in pass order: dataset ``indices``, ``labels`` and ``topk`` (N, k) classes."""

    indices: np.ndarray
    labels: np.ndarray
    topk: np.ndarray
    skipped: np.ndarray

    def misclassified(self, k: int = 1) -> np.ndarray:
        """Dataset indices of the images whose label is not among the first ``k`` predictions."""
        return self.indices[misclassified(self.topk, self.labels, k)]
