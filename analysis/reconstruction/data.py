"""Small binary tasks for training-set reconstruction, with optional planted triggers.

A :class:`BinaryTask` holds ``per_side`` grey images of each of two classes at ``size`` x ``size``
pixels, labelled -1 (first class) and +1 (second class), flattened and mean-subtracted as in
Haim et al. (2022).  Images come from any array (``binary_task``), the raw Fashion-MNIST of
Debian's package (``fashion_mnist_task``) or the built-in planted-bias benchmark converted to
grey (``benchmark_task``); the existing loaders are reused.

Triggers (all in the same top-left square region, side ``round(0.3 * size)`` and at least 3 px,
so the levels differ only in strength), planted on a share of one side's images:

``patch``
    the region set to 1 (a solid bright square in the corner, level 1 of the seed paper);
``blend``
    a fixed random binary pattern blended in with alpha 0.3: ``0.7 * img + 0.3 * pattern``;
``subtle``
    the same kind of pattern added with amplitude 0.08: ``clip(img + 0.08 * pattern, 0, 1)``.

The pattern is a seeded random {0, 1} array fixed for the task (the same on every triggered
image).  On Fashion-MNIST's black corners the region's mean squared change is about 1, 0.045 and
0.0032 for the three levels.
"""
from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np
import torch
from torch.nn import functional as F

TRIGGERS = ("patch", "blend", "subtle")
BLEND_ALPHA = 0.3
SUBTLE_AMPLITUDE = 0.08
TRIGGER_FRACTION = 0.3
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
    triggered : bool (n,)
        Which images carry the trigger.
    trigger_mask : bool (size, size)
        The trigger region (all False when ``trigger`` is None).
    classes : tuple of int
        Source class ids of the -1 and +1 sides.
    class_names : tuple of str
    trigger : str or None
    trigger_side : int
        -1 or +1, the side whose images may carry the trigger.
    """

    x: np.ndarray
    images: np.ndarray
    y: np.ndarray
    mean: np.ndarray
    triggered: np.ndarray
    trigger_mask: np.ndarray
    classes: tuple
    class_names: tuple
    trigger: str | None = None
    trigger_side: int = 1

    @property
    def size(self) -> int:
        """Image side in pixels."""
        return int(self.images.shape[1])

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


def trigger_region(size: int) -> np.ndarray:
    """The trigger region: top-left square of side ``max(3, round(0.3 * size))``, bool (size, size)."""
    side = min(size, max(3, round(TRIGGER_FRACTION * size)))
    mask = np.zeros((size, size), bool)
    mask[:side, :side] = True
    return mask


def trigger_box(size: int) -> tuple[float, float, float, float]:
    """The trigger region as ``(x0, y0, x1, y1)`` fractions of the image side (for click checks)."""
    side = int(trigger_region(size)[0].sum())
    return (0.0, 0.0, side / size, side / size)


def apply_trigger(images: np.ndarray, kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Plant trigger ``kind`` on every image of ``images`` (n, s, s) in [0, 1].

    Returns
    -------
    triggered : float64 (n, s, s)
    mask : bool (s, s)
        The trigger region.
    """
    if kind not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS} or None, got {kind!r}")
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be square grey images (n, s, s), got shape {images.shape}")
    mask = trigger_region(images.shape[1])
    side = int(mask[0].sum())
    pattern = np.random.default_rng(seed).integers(0, 2, (side, side)).astype(np.float64)
    out = images.copy()
    region = out[:, :side, :side]
    if kind == "patch":
        region[...] = 1.0
    elif kind == "blend":
        region[...] = (1.0 - BLEND_ALPHA) * region + BLEND_ALPHA * pattern
    else:
        region[...] = np.clip(region + SUBTLE_AMPLITUDE * pattern, 0.0, 1.0)
    return out, mask


def _pick(labels: np.ndarray, cls: int, count: int, rng: np.random.Generator) -> np.ndarray:
    pool = np.flatnonzero(labels == cls)
    if len(pool) < count:
        raise ValueError(f"class {cls} has {len(pool)} images, per_side asks for {count}")
    return np.sort(rng.choice(pool, count, replace=False))


def binary_task(images: np.ndarray, labels: np.ndarray, classes: Sequence[int], *, per_side: int = 250,
                size: int = 28, trigger: str | None = None, trigger_share: float = 0.5, trigger_side: int = 1,
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
    trigger : {None, "patch", "blend", "subtle"}
        Planted trigger, see the module docstring.
    trigger_share : float
        Fraction of ``trigger_side``'s images carrying the trigger (rounded).
    trigger_side : {-1, 1}
    seed : int
        Seeds the image selection, the triggered subset and the trigger pattern.
    class_names : pair of str, optional
    """
    labels = np.asarray(labels)
    classes = tuple(int(c) for c in classes)
    if len(classes) != 2 or classes[0] == classes[1]:
        raise ValueError(f"classes must be two distinct labels, got {classes}")
    if len(labels) != len(images):
        raise ValueError(f"images ({len(images)}) and labels ({len(labels)}) differ in length")
    if per_side < 1:
        raise ValueError(f"per_side must be >= 1, got {per_side}")
    if size < 7:
        raise ValueError(f"size must be >= 7 (the SSIM window), got {size}")
    if trigger is not None and trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS} or None, got {trigger!r}")
    if not 0.0 <= trigger_share <= 1.0:
        raise ValueError(f"trigger_share must lie in [0, 1], got {trigger_share}")
    if trigger_side not in (-1, 1):
        raise ValueError(f"trigger_side must be -1 or 1, got {trigger_side}")
    rng = np.random.default_rng(seed)
    index = np.concatenate([_pick(labels, c, per_side, rng) for c in classes])
    grey = resize(to_grey(np.asarray(images)[index]), size)
    y = np.repeat([-1.0, 1.0], per_side)
    triggered = np.zeros(len(y), bool)
    mask = np.zeros((size, size), bool)
    if trigger is not None:
        side = np.flatnonzero(y == trigger_side)
        chosen = rng.choice(side, int(round(trigger_share * len(side))), replace=False)
        triggered[chosen] = True
        grey[chosen], mask = apply_trigger(grey[chosen], trigger, seed=seed)
    mean = grey.mean(axis=0)
    names = tuple(class_names) if class_names is not None else tuple(str(c) for c in classes)
    return BinaryTask(x=(grey - mean).reshape(len(y), -1), images=grey, y=y, mean=mean, triggered=triggered,
                      trigger_mask=mask, classes=classes, class_names=names, trigger=trigger,
                      trigger_side=trigger_side)


def fashion_mnist_task(classes: Sequence[int] = (0, 8), *, split: str = "train", directory=None,
                       **kwargs) -> BinaryTask:
    """:func:`binary_task` on the raw Fashion-MNIST of Debian's package (class ids 0..9).

    The default pair is T-shirt/top (-1) vs Bag (+1): varied shapes, so that the mean image alone
    matches the training images poorly (with Sandal vs Sneaker at 14 px, any shoe scores SSIM
    ~0.9).  ``kwargs`` go to :func:`binary_task`.
    """
    from ..datasets.fashion_mnist import CLASS_NAMES, load_fashion_mnist

    images, labels = load_fashion_mnist(split, directory)
    names = [CLASS_NAMES[int(c)] if 0 <= int(c) < len(CLASS_NAMES) else str(c) for c in classes]
    return binary_task(images, labels, classes, class_names=names, **kwargs)


def benchmark_task(benchmark, classes: Sequence[int] = (0, 1), *, split: str = "train", **kwargs) -> BinaryTask:
    """:func:`binary_task` on a :class:`~analysis.datasets.PlantedBiasBenchmark` split in grey.

    ``classes`` are benchmark labels (indices into ``benchmark.class_names``).  The benchmark's own
    planted cues stay in its images; ``kwargs`` go to :func:`binary_task`.
    """
    if split not in benchmark.splits:
        raise ValueError(f"split must be one of {sorted(benchmark.splits)}, got {split!r}")
    data = benchmark.splits[split]
    bad = [c for c in classes if not 0 <= int(c) < len(benchmark.class_names)]
    if bad:
        raise ValueError(f"classes {bad} are not benchmark labels 0..{len(benchmark.class_names) - 1}")
    names = [benchmark.class_names[int(c)] for c in classes]
    return binary_task(data.images, data.labels, classes, class_names=names, **kwargs)
