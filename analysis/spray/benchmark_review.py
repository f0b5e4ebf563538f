"""SpRAy clusters on a data set's splits: the analysed pool of images, what a cluster focuses on, cue shares.

A :class:`Pool` is the set of images SpRAy analyses, drawn from one split (the training images) or
from two (training and validation images embedded together, Anders et al. Fig. 8); a cluster's
members are then given per split, ``{"train": indices, "test": indices}``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs
import numpy as np
import torch

from analysis.salient.ground_truth import feature_truth

#: The crowd's answer for a cluster whose heatmaps sit on each planted cue.
CUE_FOCUS = {"background": "background", "watermark": "artifact", "object": "separate_object"}


@attrs.frozen
class Pool:
    """Images analysed together: position -> (split, index in that split), the splits' images in split order.

    Attributes
    ----------
    splits : tuple of str
        Split names (e.g. ``("train",)`` or ``("train", "test")``).
    split_of : ndarray of int, shape (N,)
        Index into ``splits`` per position (non-decreasing).
    index : ndarray of int, shape (N,)
        Image index within its split.
    """

    splits: tuple
    split_of: np.ndarray
    index: np.ndarray

    @classmethod
    def of(cls, bench, splits: Sequence[str], classes: Iterable[int], per_class: int | None = None) -> "Pool":
        """The first ``per_class`` images of each class in each split (all when None), split by split."""
        # deferred: loads zennit (torch)
        from .dataset import class_indices

        classes = list(classes)
        parts = []
        for s, name in enumerate(splits):
            labels = np.asarray(bench.split(name).labels)
            chosen = np.sort(np.concatenate([class_indices(labels, c, per_class) for c in classes]
                                            or [np.zeros(0, np.int64)]))
            parts.append((np.full(len(chosen), s, np.int64), chosen.astype(np.int64)))
        return cls(tuple(splits), np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def __len__(self) -> int:
        return len(self.index)

    def members(self, positions) -> dict[str, np.ndarray]:
        """``{split: indices}`` of the given positions, every split present (possibly empty)."""
        positions = np.asarray(positions, dtype=np.int64)
        return {name: self.index[positions[self.split_of[positions] == s]] for s, name in enumerate(self.splits)}

    def tensors(self, bench, positions=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled images as float (n, 3, H, W) in [0, 1] and their labels, in the order of ``positions``
        (default: every position)."""
        positions = np.arange(len(self)) if positions is None else np.asarray(positions, dtype=np.int64)
        parts = [bench.split(name).tensors(idx) for name, idx in self.members(positions).items() if len(idx)]
        if not parts:
            raise ValueError("no positions given")
        order = torch.from_numpy(self._split_order(positions))
        return torch.cat([p[0] for p in parts])[order], torch.cat([p[1] for p in parts])[order]

    def field(self, bench, positions, name: str) -> np.ndarray:
        """A per-image field (``images``, ``bias_kinds``, masks) at the given positions, in their order."""
        positions = np.asarray(positions, dtype=np.int64)
        return gather(bench, self.members(positions), name)[self._split_order(positions)]

    def _split_order(self, positions: np.ndarray) -> np.ndarray:
        """Permutation from the split-by-split order of :meth:`members` back to the order of ``positions``."""
        grouped = np.concatenate([np.flatnonzero(self.split_of[positions] == s) for s in range(len(self.splits))])
        return np.argsort(grouped, kind="stable")


def gather(bench, members: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """A per-image field of the members of each split, concatenated in the mapping's split order."""
    parts = [np.asarray(getattr(bench.split(split), name)[np.asarray(idx, dtype=np.int64)])
             for split, idx in members.items() if len(idx)]
    if not parts:
        raise ValueError("no members to gather")
    return np.concatenate(parts)


def positive_maps(relevance: np.ndarray) -> np.ndarray:
    """Relevance (n, H, W) -> per-image [0, 1] maps of its positive part (for overlays and truth)."""
    pos = np.clip(relevance, 0, None)
    peak = pos.reshape(len(pos), -1).max(axis=1)
    return pos / np.where(peak > 0, peak, 1.0)[:, None, None]


def cluster_truth(bench, members: Mapping[str, np.ndarray], relevance: np.ndarray) -> str:
    """What the cluster's heatmaps focus on, from the planted masks (the simulated crowd's truth).

    ``relevance`` holds the members' maps in the order of ``members`` (split by split).
    """
    # deferred: loads scikit-image
    from analysis.salient.benchmark_inputs import majority_cue

    cue = majority_cue(gather(bench, members, "bias_kinds"))
    answer = feature_truth(positive_maps(relevance), gather(bench, members, "object_masks"),
                           gather(bench, members, "bias_masks"), cue)
    if answer == "main_object":
        return "object"
    if answer == "separate_object" and cue is not None:
        return CUE_FOCUS[cue]
    return answer


def cue_share(bench, members: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Share of the members (``{split: indices}``) carrying each planted cue."""
    # deferred: loads scikit-image
    from analysis.datasets.benchmark import BIAS_KINDS

    kinds = gather(bench, members, "bias_kinds")
    return {kind: float(np.mean(kinds == i)) for i, kind in enumerate(BIAS_KINDS)}


def typical_members(embedding: np.ndarray, members: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` members nearest their cluster's centre in the spectral embedding (typical examples)."""
    centre = embedding[members].mean(axis=0)
    order = np.argsort(np.linalg.norm(embedding[members] - centre, axis=1), kind="stable")
    return members[order[:n]]
