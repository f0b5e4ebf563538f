"""The predictions pass of misclassification studies (Stock & Cisse §3.1): the top-k classes of every image."""
from __future__ import annotations

import attrs
import numpy as np

from analysis.misclassification.evidence import misclassified

from .spec import Batch, PerImagePass, register_pass


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


@register_pass("predictions")
@attrs.frozen
class PredictionsPass(PerImagePass):
    """``k``: classes kept per image, best first (5 serves both top-1 and top-5 studies)."""

    result = Predictions
    k: int = attrs.field(default=5, validator=attrs.validators.ge(1))

    def image_arrays(self, handle, batch: Batch) -> dict[str, np.ndarray]:
        logits = handle.logits(batch.images).float()
        if self.k > logits.shape[1]:
            raise ValueError(f"k = {self.k} but the model has only {logits.shape[1]} classes")
        return {"topk": logits.topk(self.k, dim=1).indices.cpu().numpy()}
