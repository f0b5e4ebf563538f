"""A dataset view yielding ``(index, image, label)`` for chosen positions, and labels without decoding.

Streamed passes read images through a :class:`torch.utils.data.DataLoader`; they need each
image's dataset index next to it (to report top images, to store per-image results in order)
and must survive an unreadable file: such an item is dropped from its batch and counted.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

#: What reading a broken or truncated image file raises (PIL's UnidentifiedImageError is an OSError).
UNREADABLE = (OSError, ValueError, SyntaxError)


class IndexedImages(Dataset):
    """``(index, image, label)`` for ``dataset[indices[i]]``; ``image`` is None when the file is unreadable.

    Parameters
    ----------
    dataset : Dataset
        Yields ``(image, label, ...)`` with images as float tensors (3, H, W) in [0, 1].
    indices : sequence of int
        Dataset indices, in the order they are read.
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {self.indices.shape}")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[int, torch.Tensor | None, int]:
        index = int(self.indices[position])
        try:
            item = self.dataset[index]
        except UNREADABLE:
            return index, None, -1
        return index, item[0], int(item[1])


def collate_indexed(items: list[tuple[int, torch.Tensor | None, int]]) -> dict[str, torch.Tensor]:
    """Batch of :class:`IndexedImages` items: ``indices``, ``images``, ``labels`` and the ``skipped`` indices."""
    good = [item for item in items if item[1] is not None]
    skipped = torch.tensor([item[0] for item in items if item[1] is None], dtype=torch.long)
    if not good:
        return {"indices": torch.zeros(0, dtype=torch.long), "images": None,
                "labels": torch.zeros(0, dtype=torch.long), "skipped": skipped}
    indices, images, labels = default_collate(good)
    return {"indices": indices.long(), "images": images, "labels": labels.long(), "skipped": skipped}


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """Every item's label without decoding an image (ImageFolder ``targets`` or the benchmark's labels)."""
    targets = getattr(dataset, "targets", None)
    if targets is None and hasattr(dataset, "split"):
        targets = getattr(dataset.split, "labels", None)
    if targets is None:
        raise TypeError(f"cannot read the labels of a {type(dataset).__name__} without decoding its images; "
                        "it needs a `targets` attribute (as torchvision's ImageFolder has)")
    return np.asarray(targets, dtype=np.int64)
