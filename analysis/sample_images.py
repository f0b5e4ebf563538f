"""scikit-image's bundled photographs with a known main subject (the data of the quick demo study), and a
researcher's image files loaded the same way."""
from __future__ import annotations

import os

import numpy as np

#: Bundled image name -> its main subject (the ground truth of the demo question).
SUBJECTS: dict[str, str] = {
    "astronaut": "person",
    "camera": "person",
    "chelsea": "animal",
    "horse": "animal",
    "coffee": "object",
    "rocket": "object",
    "coins": "object",
    "clock": "object",
    "brick": "texture",
    "grass": "texture",
    "gravel": "texture",
}
SUBJECT_OPTIONS = ("person", "animal", "object", "texture")


def load_sample(name: str, size: int = 256) -> np.ndarray:
    """The bundled image ``name`` as uint8 RGB, its longer side resized to ``size``."""
    # deferred: loads scikit-image
    import skimage.data

    # deferred: loads scikit-image
    from skimage.transform import resize

    if name not in SUBJECTS:
        raise KeyError(f"unknown sample image {name!r}; known: {', '.join(sorted(SUBJECTS))}")
    image = np.asarray(getattr(skimage.data, name)())
    if image.dtype == bool:
        image = np.where(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3]
    scale = size / max(image.shape[:2])
    shape = (round(image.shape[0] * scale), round(image.shape[1] * scale))
    resized = resize(image, shape, anti_aliasing=True, preserve_range=True)
    return np.clip(resized, 0, 255).astype(np.uint8)


def load_file(path: str | os.PathLike, size: int = 256) -> np.ndarray:
    """An image file as uint8 RGB (EXIF orientation honoured), its longer side resized to ``size`` as
    :func:`load_sample` does for the bundled images; raises ``OSError`` when it cannot be decoded."""
    # deferred: loads Pillow's plugins
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
    scale = size / max(image.size)
    return np.asarray(image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                   Image.BILINEAR), dtype=np.uint8)
