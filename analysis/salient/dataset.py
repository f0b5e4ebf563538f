"""The Salient dataset (Singla & Feizi §3.4, §4, §5.1): one set D(c, i) per labelled (class, feature).

D(c, i) = the top-``pool`` images *labelled* c by r_i(x) (paper: 65), each with its NAM for i.
For class c and a label (core or spurious), the region of an image in the union of the sets of
c's features with that label is the elementwise max of the NAMs of those features *whose set
contains the image* (the reference's ``SalientImageNet`` dataset).
"""
from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np
import torch

from analysis.salient.masks import LABELS, SalientSample
from analysis.salient.nam import neural_activation_maps, to_float_images


@attrs.frozen
class FeatureSet:
    """D(c, i): dataset indices (highest activation first) and their NAMs for feature i."""

    cls: int
    feature: int
    label: str  # core / spurious
    indices: np.ndarray  # (n,)
    nams: np.ndarray  # (n, H, W) float32 in [0, 1]

    def __attrs_post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"feature label must be core or spurious, got {self.label!r}")
        if len(self.indices) != len(self.nams):
            raise ValueError(f"{len(self.indices)} images but {len(self.nams)} NAMs in D({self.cls}, {self.feature})")


@attrs.define
class SalientDataset:
    sets: list[FeatureSet]

    def classes(self, label: str | None = None) -> list[int]:
        """Classes with at least one feature (with this label)."""
        return sorted({s.cls for s in self.sets if label is None or s.label == label})

    def features(self, cls: int, label: str | None = None) -> list[FeatureSet]:
        return [s for s in self.sets if s.cls == cls and (label is None or s.label == label)]

    def feature_set(self, cls: int, feature: int) -> FeatureSet:
        for s in self.sets:
            if s.cls == cls and s.feature == feature:
                return s
        raise KeyError(f"no set D({cls}, {feature})")

    def region(self, cls: int, label: str) -> tuple[np.ndarray, np.ndarray]:
        """(indices, masks): the union of D(cls, i) over features i labelled ``label``; per image
        the max of the NAMs of those features whose set contains it."""
        if label not in LABELS:
            raise ValueError(f"label must be core or spurious, got {label!r}")
        sets = self.features(cls, label)
        if not sets:
            raise ValueError(f"class {cls} has no {label} feature")
        return _max_masks(sets)

    def samples(self, class_names: list[str]) -> list[SalientSample]:
        """One sample per image of the dataset: its class, its per-feature NAMs and combined masks."""
        samples = []
        for cls in self.classes():
            sets = self.features(cls)
            indices = np.unique(np.concatenate([s.indices for s in sets]))
            shape = sets[0].nams.shape[1:]
            for index in indices:
                own = {s.feature: (s.label, s.nams[int(np.flatnonzero(s.indices == index)[0])])
                       for s in sets if index in s.indices}
                masks = {label: np.max([m for lab, m in own.values() if lab == label], axis=0)
                         if any(lab == label for lab, _ in own.values()) else np.zeros(shape, np.float32)
                         for label in LABELS}
                samples.append(SalientSample(
                    index=int(index), cls=int(cls), class_name=class_names[cls],
                    core_features=tuple(sorted(f for f, (lab, _) in own.items() if lab == "core")),
                    spurious_features=tuple(sorted(f for f, (lab, _) in own.items() if lab == "spurious")),
                    core_mask=masks["core"].astype(np.float32), spurious_mask=masks["spurious"].astype(np.float32),
                    feature_masks={f: m for f, (_, m) in sorted(own.items())},
                ))
        return samples


def _max_masks(sets: list[FeatureSet]) -> tuple[np.ndarray, np.ndarray]:
    indices = np.unique(np.concatenate([s.indices for s in sets]))
    position = {int(i): j for j, i in enumerate(indices)}
    masks = np.zeros((len(indices),) + sets[0].nams.shape[1:], np.float32)
    for s in sets:
        rows = [position[int(i)] for i in s.indices]
        masks[rows] = np.maximum(masks[rows], s.nams)
    return indices, masks


@torch.no_grad()
def build_salient_dataset(handle, images: np.ndarray, feature_labels: Mapping[int, Mapping[int, str]],
                          pools: Mapping[tuple[int, int], np.ndarray], batch_size: int = 128) -> SalientDataset:
    """D(c, i) with NAMs for every labelled (c, i).

    ``images``: uint8 (N, H, W, 3) indexed by dataset index; ``feature_labels[c][i]`` is
    ``core``/``spurious``; ``pools[(c, i)]`` the dataset indices of D(c, i) (e.g.
    ``FeaturePanel.pool`` of the evidence, or :func:`analysis.salient.importance.top_images` with
    the labels and ``k`` = 65).
    """
    sets = []
    size = tuple(images.shape[1:3])
    for cls, labelled in sorted(feature_labels.items()):
        for feature, label in sorted(labelled.items()):
            if (cls, feature) not in pools:
                raise ValueError(f"no image set for class {cls}, feature {feature}")
            indices = np.asarray(pools[(cls, feature)], dtype=np.int64)
            nams = []
            for start in range(0, len(indices), batch_size):
                x = to_float_images(images[indices[start:start + batch_size]])
                nams.append(neural_activation_maps(handle.feature_maps(x), int(feature), size).cpu().numpy())
            sets.append(FeatureSet(int(cls), int(feature), label, indices,
                                   np.concatenate(nams).astype(np.float32) if nams else np.zeros((0,) + size,
                                                                                                np.float32)))
    return SalientDataset(sets)
