"""Reading Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package.

The package installs the original gzip'd IDX files under
``/usr/share/datasets/fashion-mnist``.  Another directory can be given
explicitly or through the ``SALIENT_FASHION_MNIST_DIR`` environment variable.
Nothing is downloaded.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEFAULT_DIRECTORY = Path("/usr/share/datasets/fashion-mnist")
ENVIRONMENT_VARIABLE = "SALIENT_FASHION_MNIST_DIR"

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CLASS_DESCRIPTIONS = (
    "a short-sleeved top or T-shirt",
    "a pair of trousers",
    "a long-sleeved pullover without buttons",
    "a one-piece dress",
    "a long-sleeved coat or jacket, usually buttoned",
    "an open sandal",
    "a shirt with collar and buttons",
    "a low sports shoe",
    "a handbag or bag",
    "a boot covering the ankle",
)

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class FashionMNISTNotFoundError(FileNotFoundError):
    """The Fashion-MNIST files are not installed."""


def fashion_mnist_directory(directory: str | os.PathLike | None = None) -> Path:
    """The directory holding the IDX files (argument, environment, Debian default)."""
    if directory is not None:
        return Path(directory)
    return Path(os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_DIRECTORY)


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    magic = int.from_bytes(data[0:4], "big")
    dims = magic & 0xFF
    if magic >> 8 != 0x08 or dims != expected_dims:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes with {expected_dims} dimension(s)")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    offset = 4 + 4 * dims
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def load_fashion_mnist(split: str = "train", directory: str | os.PathLike | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Load one Fashion-MNIST split.

    Parameters
    ----------
    split : {"train", "test"}
        60,000 training or 10,000 test images.
    directory : path, optional
        Where the ``*-idx?-ubyte.gz`` files are; see :func:`fashion_mnist_directory`.

    Returns
    -------
    images : ndarray of uint8, shape (N, 28, 28)
    labels : ndarray of uint8, shape (N,)

    Raises
    ------
    FashionMNISTNotFoundError
        If the files are missing, with the command that installs them.
    """
    if split not in _FILES:
        raise ValueError(f"split must be one of {sorted(_FILES)}, got {split!r}")
    root = fashion_mnist_directory(directory)
    image_file, label_file = (root / name for name in _FILES[split])
    missing = [p for p in (image_file, label_file) if not p.is_file()]
    if missing:
        raise FashionMNISTNotFoundError(
            f"Fashion-MNIST files not found: {', '.join(map(str, missing))}. "
            f"Install Debian's '{DEBIAN_PACKAGE}' package (apt-get install -y {DEBIAN_PACKAGE}) "
            f"or point {ENVIRONMENT_VARIABLE} at a directory with the original gzip'd IDX files."
        )
    images = _read_idx(image_file, 3)
    labels = _read_idx(label_file, 1)
    if len(images) != len(labels):
        raise ValueError(f"{image_file} and {label_file} hold different numbers of items")
    return images, labels
