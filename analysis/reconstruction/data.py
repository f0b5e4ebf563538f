"""Small binary tasks for training-set reconstruction, with an optional planted bias.

A :class:`BinaryTask` holds ``per_side`` grey images of each of two classes at ``size`` x ``size``
pixels, labelled -1 (first class) and +1 (second class), flattened and mean-subtracted as in
Haim et al. (2022).  Images come from any array (``binary_task``), the raw Fashion-MNIST of
Debian's package (``fashion_mnist_task``) or the built-in planted-bias benchmark converted to
grey (``benchmark_task``); the existing loaders are reused.  The biases (the seed paper's
positional trigger levels, contrast, and the extra intensity triggers) are in :mod:`.bias`;
:func:`clean_split` gives the same classes' clean test images, for the clean test accuracy.
"""
from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np
import torch
from torch.nn import functional as F

from .bias import BIASES, DEFAULT_PAIR, box_mask, plant, unique_triggers

_LUMA = np.array([0.299, 0.587, 0.114])


@attrs.frozen(eq=False)
class BinaryTask:
    """A two-class training set prepared for the homogeneous MLP.

    Attributes
    ----------
    x : float64 (n, size*size)
        Flattened images minus ``mean`` (the network's inputs).
    images : float64 (n, size, size)
        The images in [0, 1] (for display and scoring).
    y : float64 (n,)
        -1 for ``classes[0]``, +1 for ``classes[1]``.
    mean : float64 (size, size)
        Mean training image (triggers included).
    boxes : int64 (n, 4)
        Each image's trigger box (x0, y0, x1, y1) in pixels, -1 without a trigger (see :mod:`.bias`).
    values : float64 (n,)
        The value each trigger pushes its box towards; NaN without a trigger.
    classes : tuple of int
        Source class ids of the -1 and +1 sides.
    class_names : tuple of str
    bias : str
        One of :data:`.bias.BIASES`.
    """

    x: np.ndarray
    images: np.ndarray
    y: np.ndarray
    mean: np.ndarray
    boxes: np.ndarray
    values: np.ndarray
    classes: tuple
    class_names: tuple
    bias: str = "base"

    @property
    def size(self) -> int:
        """Image side in pixels."""
        return int(self.images.shape[1])

    @property
    def triggered(self) -> np.ndarray:
        """Which images carry a trigger, bool (n,)."""
        return self.boxes[:, 0] >= 0

    @property
    def trigger_mask(self) -> np.ndarray:
        """The union of all trigger boxes, bool (size, size)."""
        mask = np.zeros((self.size, self.size), bool)
        for box, _ in unique_triggers(self.boxes, self.values):
            mask |= box_mask(box, self.size)
        return mask

    def __len__(self) -> int:
        return len(self.y)


def to_grey(images: np.ndarray) -> np.ndarray:
    """uint8 or float images (n, h, w) or (n, h, w, 3) as float64 grey levels in [0, 1]."""
    images = np.asarray(images)
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError(f"images must have shape (n, h, w) or (n, h, w, 3), got {images.shape}")
    grey = images.astype(np.float64)
    if images.dtype == np.uint8:
        grey /= 255.0
    if grey.ndim == 4:
        grey = grey @ _LUMA
    return np.clip(grey, 0.0, 1.0)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Grey images (n, h, w) resized to (n, size, size), antialiased bilinear."""
    if images.shape[1:] == (size, size):
        return images.astype(np.float64)
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float64))[:, None]
    out = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return np.clip(out[:, 0].numpy(), 0.0, 1.0)


def _take(images, index: np.ndarray) -> np.ndarray:
    """``images[index]`` of an array or of a lazily decoded split (a registered folder's images are read only
    for the chosen indices)."""
    return np.asarray(images)[index] if isinstance(images, np.ndarray) else np.asarray(images[index])


def _pick(labels: np.ndarray, cls: int, count: int, rng: np.random.Generator) -> np.ndarray:
    pool = np.flatnonzero(labels == cls)
    if len(pool) < count:
        raise ValueError(f"class {cls} has {len(pool)} images, per_side asks for {count}")
    return np.sort(rng.choice(pool, count, replace=False))


def _check_classes(images, labels: np.ndarray, classes: Sequence[int]) -> tuple[int, int]:
    classes = tuple(int(c) for c in classes)
    if len(classes) != 2 or classes[0] == classes[1]:
        raise ValueError(f"classes must be two distinct labels, got {classes}")
    if len(labels) != len(images):
        raise ValueError(f"images ({len(images)}) and labels ({len(labels)}) differ in length")
    return classes


def binary_task(images: np.ndarray, labels: np.ndarray, classes: Sequence[int], *, per_side: int = 250,
                size: int = 28, bias: str = "base", trigger_share: float = 0.5, trigger_side: int = 1,
                seed: int = 0, class_names: Sequence[str] | None = None) -> BinaryTask:
    """Two classes of ``images`` as a mean-subtracted binary task.

    Parameters
    ----------
    images : array (N, h, w) or (N, h, w, 3)
        uint8 (0..255) or float in [0, 1]; converted to grey and resized to ``size``.
    labels : int array (N,)
    classes : pair of int
        Label of the -1 side, label of the +1 side.
    per_side : int
        Images drawn (seeded, without replacement) from each class.
    size : int
        Side of the square grey images (>= 7, the SSIM window).
    bias : str
        One of :data:`.bias.BIASES` (``base``: none), see :mod:`.bias`.
    trigger_share, trigger_side
        Intensity triggers only: the share of ``trigger_side``'s (-1 or 1) images carrying one.
    seed : int
        Seeds the image selection, the trigger positions and placements, and the intensity pattern.
    class_names : pair of str, optional
    """
    labels = np.asarray(labels)
    classes = _check_classes(images, labels, classes)
    if per_side < 1:
        raise ValueError(f"per_side must be >= 1, got {per_side}")
    if size < 7:
        raise ValueError(f"size must be >= 7 (the SSIM window), got {size}")
    if bias not in BIASES:
        raise ValueError(f"bias must be one of {BIASES}, got {bias!r}")
    if not 0.0 <= trigger_share <= 1.0:
        raise ValueError(f"trigger_share must lie in [0, 1], got {trigger_share}")
    if trigger_side not in (-1, 1):
        raise ValueError(f"trigger_side must be -1 or 1, got {trigger_side}")
    rng = np.random.default_rng(seed)
    index = np.concatenate([_pick(labels, c, per_side, rng) for c in classes])
    grey = resize(to_grey(_take(images, index)), size)
    y = np.repeat([-1.0, 1.0], per_side)
    planted = plant(grey, y, bias, rng, share=trigger_share, side=trigger_side, seed=seed)
    mean = planted.images.mean(axis=0)
    names = tuple(class_names) if class_names is not None else tuple(str(c) for c in classes)
    return BinaryTask(x=(planted.images - mean).reshape(len(y), -1), images=planted.images, y=y, mean=mean,
                      boxes=planted.boxes, values=planted.values, classes=classes, class_names=names, bias=bias)


def clean_split(images: np.ndarray, labels: np.ndarray, classes: Sequence[int], *, size: int = 28,
                limit: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Every image of the two ``classes`` (or ``limit`` per class, seeded) in grey at ``size``, and -1/+1 labels.

    No bias is planted: this is the clean test set the seed paper measures test accuracy on.
    """
    labels = np.asarray(labels)
    classes = _check_classes(images, labels, classes)
    rng = np.random.default_rng(seed)
    parts = []
    for c in classes:
        pool = np.flatnonzero(labels == c)
        if len(pool) == 0:
            raise ValueError(f"class {c} has no images in this split")
        parts.append(pool if limit is None or limit >= len(pool) else np.sort(rng.choice(pool, limit, replace=False)))
    y = np.concatenate([np.full(len(part), sign) for part, sign in zip(parts, (-1.0, 1.0))])
    return resize(to_grey(_take(images, np.concatenate(parts))), size), y


def fashion_mnist_split(classes: Sequence[int], split: str = "train", directory=None
                        ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images, labels and the two class names of a raw Fashion-MNIST split (Debian's package)."""
    # deferred: loads scikit-image
    from ..datasets.fashion_mnist import CLASS_NAMES, load_fashion_mnist

    images, labels = load_fashion_mnist(split, directory)
    return images, labels, [CLASS_NAMES[int(c)] if 0 <= int(c) < len(CLASS_NAMES) else str(c) for c in classes]


def benchmark_split(benchmark, classes: Sequence[int], split: str = "train"
                    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images, labels and the two class names of a :class:`~analysis.datasets.PlantedBiasBenchmark` split, or of a
    registered folder (:class:`~analysis.datasets.folder_benchmark.FolderBenchmark`: ``test`` is its validation
    folder; its images are decoded only when picked)."""
    if split not in ("train", "test", *getattr(benchmark, "splits", ())):
        raise ValueError(f"split must be one of {sorted(getattr(benchmark, 'splits', ('train', 'test')))}, "
                         f"got {split!r}")
    bad = [c for c in classes if not 0 <= int(c) < len(benchmark.class_names)]
    if bad:
        raise ValueError(f"classes {bad} are not labels 0..{len(benchmark.class_names) - 1} of the dataset")
    data = benchmark.split(split)
    return data.images, data.labels, [benchmark.class_names[int(c)] for c in classes]


def fashion_mnist_task(classes: Sequence[int] = DEFAULT_PAIR, *, split: str = "train", directory=None,
                       **kwargs) -> BinaryTask:
    """:func:`binary_task` on the raw Fashion-MNIST of Debian's package (class ids 0..9).

    The default pair is :data:`~.bias.DEFAULT_PAIR`, T-shirt/top (-1) vs Shirt (+1): hard enough that a
    trigger is a shortcut (see there). Pairs of similar shapes let the mean image alone match the training
    images well (with Sandal vs Sneaker at 14 px, any shoe scores SSIM ~0.9); T-shirt/top vs Bag, varied
    shapes, is the other extreme.  ``kwargs`` go to :func:`binary_task`.
    """
    images, labels, names = fashion_mnist_split(classes, split, directory)
    return binary_task(images, labels, classes, class_names=names, **kwargs)


def benchmark_task(benchmark, classes: Sequence[int] = (0, 1), *, split: str = "train", **kwargs) -> BinaryTask:
    """:func:`binary_task` on a :class:`~analysis.datasets.PlantedBiasBenchmark` split in grey.

    ``classes`` are benchmark labels (indices into ``benchmark.class_names``).  The benchmark's own
    planted cues stay in its images; ``kwargs`` go to :func:`binary_task`.
    """
    images, labels, names = benchmark_split(benchmark, classes, split)
    return binary_task(images, labels, classes, class_names=names, **kwargs)
