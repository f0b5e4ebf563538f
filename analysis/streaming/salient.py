"""The Salient features pass (Singla & Feizi §3.2): IV_c from running sums, top images per (class, feature)
by top-k merge.

Per batch: r(x) and the predicted class.  Kept: the sum of r(x) over the images predicted c and
their count (IV_c = sum / count * W[c]), the label counts, and for every (class, feature) the
``pool`` images with the highest r_i(x) among the images *predicted* c (feature panels, App. C)
and among those *labelled* c (top-65 pools, §3.4).  Memory: classes x pool x features, however
many images stream by.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs
import numpy as np
import torch

from analysis.salient.importance import top_features

from .partial import Partial
from .spec import Accumulator, Batch, StreamPass, register_pass
from .topk import GroupedTopK

GROUPINGS = ("prediction", "label")


def _columns(value: Mapping | Sequence | None) -> dict[int, list[int]] | None:
    if value is None:
        return None
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    return {int(c): [int(f) for f in features] for c, features in items}


@register_pass("salient")
@attrs.frozen
class SalientPass(StreamPass):
    """Parameters of the features pass.

    Attributes
    ----------
    pool : int
        Images kept per (class, feature) and grouping (the paper's 65).
    features : mapping or list, optional
        Track only these features per class (``{class: [features]}``), e.g. for a second pass
        once the top features are known; every feature otherwise.
    """

    pool: int = 65
    features: dict | None = attrs.field(default=None, converter=_columns)

    def accumulator(self) -> "SalientAccumulator":
        return SalientAccumulator(self)

    def combine(self, parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        parts = [p for p in parts if p]
        if not parts:
            return {}
        for part in parts[1:]:
            if part["weight"].shape != parts[0]["weight"].shape or not np.array_equal(part["weight"],
                                                                                      parts[0]["weight"]):
                raise ValueError("partials of the salient pass come from different model weights")
        arrays = {"weight": parts[0]["weight"]}
        for name in ("pred_sum", "pred_count", "label_count"):
            arrays[name] = parts[0][name].copy()
            for part in parts[1:]:
                arrays[name] += part[name]
        for grouping in GROUPINGS:
            prefix = f"{grouping}_"
            state = GroupedTopK.from_arrays(parts[0], prefix)
            state.merge(GroupedTopK.from_arrays(p, prefix) for p in parts[1:])
            arrays.update(state.to_arrays(prefix))
        return arrays

    def finish(self, merged: Partial) -> "SalientStats":
        a = merged.arrays
        mean = a["pred_sum"] / np.maximum(a["pred_count"], 1)[:, None]
        return SalientStats(
            importance=(mean * a["weight"].astype(np.float64)).astype(np.float32),
            predicted_counts=a["pred_count"], label_counts=a["label_count"],
            by_prediction=GroupedTopK.from_arrays(a, "prediction_"), by_label=GroupedTopK.from_arrays(a, "label_"),
            skipped=merged.skipped,
        )


class SalientAccumulator(Accumulator):
    """Running sums and the two top-k states of one shard."""

    def __init__(self, stream: SalientPass) -> None:
        self.pool = stream.pool
        self.tops = {g: GroupedTopK(stream.pool, stream.features) for g in GROUPINGS}
        self.sums: dict[str, torch.Tensor] = {}
        self.weight: np.ndarray | None = None

    def add(self, handle, batch: Batch) -> None:
        out = handle.features_and_maps(batch.images)
        features = out.features.float()  # stays on the model's device, as do the sums and top-k states
        predictions, labels = out.logits.argmax(1), batch.labels
        if self.weight is None:
            weight = handle.last_linear[0].detach().float()
            classes, dim = weight.shape
            self.weight = weight.cpu().numpy()
            self.sums = {"pred_sum": torch.zeros(classes, dim, dtype=torch.float64, device=weight.device),
                         "pred_count": torch.zeros(classes, dtype=torch.int64, device=weight.device),
                         "label_count": torch.zeros(classes, dtype=torch.int64, device=weight.device)}
        classes = len(self.weight)
        if len(labels) and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(f"labels must lie in 0..{classes - 1} (the model's classes), got {labels.max().item()}")
        self.sums["pred_sum"].index_add_(0, predictions, features.double())
        self.sums["pred_count"] += torch.bincount(predictions, minlength=classes)
        self.sums["label_count"] += torch.bincount(labels, minlength=classes)
        self.tops["prediction"].add(predictions, features, batch.indices)
        self.tops["label"].add(labels, features, batch.indices)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tops.values()) + sum(s.nbytes for s in self.sums.values())

    def arrays(self) -> dict[str, np.ndarray]:
        if self.weight is None:
            return {}
        arrays = {"weight": self.weight, **{k: v.cpu().numpy() for k, v in self.sums.items()}}
        for grouping, state in self.tops.items():
            arrays.update(state.to_arrays(f"{grouping}_"))
        return arrays


@attrs.frozen
class SalientStats:
    """What the features pass found over the whole image index.

    Attributes
    ----------
    importance : ndarray (C, D) float32
        IV_c: mean r(x) over the images predicted c, times W[c]; zero for a never-predicted class.
    predicted_counts, label_counts : ndarray (C,) int64
    by_prediction, by_label : GroupedTopK
        Top-``pool`` images per (class, feature) among the images predicted / labelled c.
    skipped : ndarray of int64
        Dataset indices of unreadable images.
    """

    importance: np.ndarray
    predicted_counts: np.ndarray
    label_counts: np.ndarray
    by_prediction: GroupedTopK
    by_label: GroupedTopK
    skipped: np.ndarray

    def top_features(self, k: int) -> np.ndarray:
        """(C, k) most important features per class, most important first."""
        return top_features(torch.from_numpy(self.importance), k).numpy()

    def _grouping(self, by: str) -> GroupedTopK:
        if by not in GROUPINGS:
            raise ValueError(f"by must be one of {GROUPINGS}, got {by!r}")
        return self.by_prediction if by == "prediction" else self.by_label

    def top_images(self, cls: int, feature: int, k: int, by: str = "prediction") -> np.ndarray:
        """The ``k`` images of class ``cls`` (predicted or labelled) with the highest r_feature, highest first."""
        state = self._grouping(by)
        if k > state.pool:
            raise ValueError(f"only the top {state.pool} images were kept per (class, feature); asked for {k}")
        if by == "label" and state.count(cls) == 0:
            raise ValueError(f"class {cls} has no images")
        return state.top(cls, feature, k)

    def bottom_of_top(self, cls: int, feature: int, k: int, pool: int = 65, by: str = "label") -> np.ndarray:
        """The ``k`` lowest of the ``pool`` highest images of ``cls`` (lowest last)."""
        top = self.top_images(cls, feature, pool, by)
        return top[-k:] if len(top) >= k else top
