"""The built-in benchmark's configuration (:class:`BenchmarkConfig`) and names, without torch: the web process reads
the default classes from here (the registry's built-in entries) while :mod:`.benchmark` renders the images."""
from __future__ import annotations

import hashlib
import json

import attrs

from .fashion_mnist import CLASS_NAMES

BIAS_KINDS = ("background", "watermark", "object")
NO_BIAS = -1
SPLITS = ("train", "test", "flipped")
#: Version of the generated arrays; part of :meth:`BenchmarkConfig.fingerprint` (the cache file names).
_FORMAT_VERSION = 2


def _check_classes(instance, attribute, value) -> None:
    if not value or len(set(value)) != len(value) or not all(0 <= c < len(CLASS_NAMES) for c in value):
        raise ValueError(f"classes must be distinct Fashion-MNIST indices 0..9, got {value}")


def _check_rate(instance, attribute, value) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must lie in [0, 1], got {value}")


def _check_watermark_scale(instance, attribute, value) -> None:
    if not 0.0 < value <= 0.4:
        raise ValueError(f"watermark_scale must lie in (0, 0.4] (the mark's side over the image's), got {value}")


@attrs.frozen
class BenchmarkConfig:
    """Everything that determines the generated benchmark.

    Attributes
    ----------
    seed : int
        Random seed; equal configs give identical arrays.
    classes : tuple of int
        Fashion-MNIST class indices to use (benchmark labels follow this order).
    train_per_class, test_per_class : int
        Images per class in ``train`` and in each of ``test`` and ``flipped``
        (at most 6000 and 500).
    image_size, garment_size : int
        Canvas side and garment side in pixels (garment at most half the canvas,
        which leaves room for the planted object).
    bias_rate : float
        Fraction of a biased class's train/test images that carry its cue.
    other_rate : float
        Fraction of the other classes' train/test images carrying a foreign cue.
    flip_rate : float
        Fraction of the ``flipped`` images carrying a foreign cue.
    background_class, watermark_class, object_class : int
        Fashion-MNIST class of each planted cue (default Pullover, Coat, Shirt).
    watermark_scale : float
        Side of the watermark over the image's side (at least 7 px).
    """

    seed: int = 0
    classes: tuple[int, ...] = attrs.field(default=tuple(range(10)), converter=tuple, validator=_check_classes)
    train_per_class: int = 1000
    test_per_class: int = 200
    image_size: int = 64
    garment_size: int = 32
    bias_rate: float = attrs.field(default=0.9, validator=_check_rate)
    other_rate: float = attrs.field(default=0.0, validator=_check_rate)
    flip_rate: float = attrs.field(default=0.9, validator=_check_rate)
    background_class: int = 2
    watermark_class: int = 4
    object_class: int = 6
    watermark_scale: float = attrs.field(default=0.2, validator=_check_watermark_scale)

    def __attrs_post_init__(self) -> None:
        biased = self.bias_classes()
        if len(set(biased)) != len(biased):
            raise ValueError("each planted cue needs its own class")
        missing = [CLASS_NAMES[c] for c in biased if c not in self.classes]
        if missing:
            raise ValueError(f"biased classes {missing} are not among the chosen classes {self.classes}")
        if not 1 <= self.train_per_class <= 6000 or not 1 <= self.test_per_class <= 500:
            raise ValueError("train_per_class must be in 1..6000 and test_per_class in 1..500")
        if self.garment_size < 8 or 2 * self.garment_size > self.image_size:
            raise ValueError("garment_size must be >= 8 and at most half of image_size")

    def bias_classes(self) -> tuple[int, int, int]:
        """Fashion-MNIST class of each kind in :data:`BIAS_KINDS` order."""
        return (self.background_class, self.watermark_class, self.object_class)

    def fingerprint(self) -> str:
        """Short hash identifying the generated content (used in cache file names)."""
        blob = json.dumps({"version": _FORMAT_VERSION, **attrs.asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
