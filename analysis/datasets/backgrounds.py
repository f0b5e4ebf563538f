"""Background sources cut from scikit-image's bundled images (nothing downloaded).

Every source is turned into an RGB float32 array in [0, 1] whose shorter side
is :data:`SOURCE_SIDE` pixels; backgrounds are random 64x64 (or other) crops.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from skimage import data as skdata
from skimage.transform import resize

#: Shorter side of every source after resizing; crops of 64 px cover a third to a half.
SOURCE_SIDE = 160

#: Neutral backgrounds, shared by all classes.
NEUTRAL_SOURCES = (
    "grass", "gravel", "coffee", "rocket", "astronaut", "chelsea", "camera",
    "coins", "moon", "page", "text", "hubble_deep_field", "immunohistochemistry", "clock",
)
#: The texture planted as a spurious background cue.
BIAS_TEXTURE = "brick"

#: Colour tints for the grey-level textures, so that they look like their material.
_TINTS = {"brick": (1.0, 0.45, 0.32), "grass": (0.45, 0.85, 0.35), "gravel": (0.85, 0.8, 0.7)}


@lru_cache(maxsize=None)
def background_source(name: str, side: int = SOURCE_SIDE) -> np.ndarray:
    """Load a bundled scikit-image picture as RGB float32 with shorter side ``side``.

    Parameters
    ----------
    name : str
        A function name in :mod:`skimage.data` whose picture ships with scikit-image.
    side : int
        Shorter side after resizing.

    Returns
    -------
    ndarray, shape (H, W, 3), float32 in [0, 1]
    """
    loader = getattr(skdata, name, None)
    if loader is None:
        raise ValueError(f"skimage.data has no picture named {name!r}")
    try:
        image = np.asarray(loader())
    except Exception as exc:  # e.g. a picture that would need pooch / a download
        raise RuntimeError(f"skimage.data.{name} is not bundled with scikit-image: {exc}") from exc
    image = image.astype(np.float32)
    if image.max() > 1.0:
        image /= 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3]
    if name in _TINTS:
        grey = image.mean(axis=2, keepdims=True)
        grey = (grey - grey.min()) / max(float(grey.max() - grey.min()), 1e-6)
        image = 0.15 + 0.85 * grey * np.asarray(_TINTS[name], dtype=np.float32)
    height, width = image.shape[:2]
    scale = side / min(height, width)
    shape = (max(side, round(height * scale)), max(side, round(width * scale)), 3)
    return np.clip(resize(image, shape, anti_aliasing=True), 0, 1).astype(np.float32)


def random_crops(source: np.ndarray, count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random ``size`` x ``size`` crops of ``source`` (random h-flips), vectorised.

    Returns
    -------
    ndarray, shape (count, size, size, 3), float32
    """
    height, width = source.shape[:2]
    if height < size or width < size:
        raise ValueError(f"source of shape {source.shape[:2]} is smaller than the crop size {size}")
    top = rng.integers(0, height - size + 1, count)
    left = rng.integers(0, width - size + 1, count)
    offsets = np.arange(size)
    rows = top[:, None, None] + offsets[None, :, None]
    cols = left[:, None, None] + offsets[None, None, :]
    flip = rng.random(count) < 0.5
    cols = np.where(flip[:, None, None], cols[:, :, ::-1], cols)
    return source[rows, cols]
