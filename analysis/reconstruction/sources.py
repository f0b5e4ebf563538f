"""The two classes of a reconstruction study from a dataset: the data's own image size and a cache key.

Haim et al. (2022) reconstruct from models trained on two classes of CIFAR-10 (vehicles / animals) and
MNIST (odd / even) at the data's own 32 / 28 px; here any registered image folder or the built-in
benchmark gives the two classes, in grey, at any size up to the data's own (a larger size would only
interpolate pixels the data does not have).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError


def own_size(dataset, classes: Sequence[int]) -> int:
    """The largest square side the ``classes``' images have in every split: the benchmark's image size, or a
    registered folder's smallest image side among those classes' files (read from the headers only)."""
    sides = []
    for split in ("train", "test"):
        data = dataset.split(split)
        samples = getattr(getattr(data, "dataset", None), "samples", None)
        if samples is None:  # an in-memory benchmark split
            sides.append(int(np.asarray(data.images).shape[1]))
            continue
        wanted = {int(c) for c in classes}
        for path, label in samples:
            if label in wanted:
                try:
                    with Image.open(path) as image:
                        sides.append(min(image.size))
                except (OSError, UnidentifiedImageError, ValueError):
                    continue  # an unreadable file is not read for training either (shown black, listed skipped)
    if not sides:
        raise ValueError("none of the two classes' images could be read")
    return min(sides)


def check_size(dataset, classes: Sequence[int], size: int) -> None:
    """Refuse a size above the data's own (:func:`own_size`), naming both."""
    own = own_size(dataset, classes)
    if size > own:
        raise ValueError(f"size {size} is larger than the data's own images ({own} px, the smallest side among "
                         f"the two classes): choose a size of at most {own}")


def data_key(dataset) -> str:
    """A key of the files a folder dataset reads (train and validation, as loaded); the benchmark's config."""
    parts = []
    for split in ("train", "test"):
        data = dataset.split(split)
        samples = getattr(getattr(data, "dataset", None), "samples", None)
        parts.append([p for p, _ in samples] if samples is not None else None)
    config = getattr(dataset, "config", None)
    text = json.dumps([parts, getattr(config, "image_size", None), getattr(config, "mode", None)], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
