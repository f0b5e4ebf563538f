"""A researcher's image folder seen through the benchmark's interface, so every study kind runs on it.

:func:`scan_image_folder` checks an ImageFolder tree once (images per class, unreadable files);
:class:`FolderBenchmark` loads its images as the model's input says (resize + centre crop as
torchvision's ImageNet evaluation, or a plain resize), with EXIF orientation honoured and grey,
palette, CMYK or RGBA images converted to RGB. A file that cannot be decoded is skipped and counted.
A folder has no masks: ``has_masks`` is False and no image carries a planted cue.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import attrs
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from analysis.datasets.metadata import ClassInfo

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})
RESIZE_MODES = ("resize_crop", "resize")
_DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)


def load_image(path: str | os.PathLike, size: int, mode: str = "resize_crop") -> np.ndarray:
    """An image file as ``(size, size, 3)`` uint8 RGB; raises ``OSError`` when it cannot be decoded.

    ``resize_crop``: shorter side to ``size * 256 / 224``, then the centre ``size`` square (torchvision's
    ImageNet evaluation); ``resize``: the whole image squeezed to ``size`` × ``size``.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; use one of {', '.join(RESIZE_MODES)}")
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
    if mode == "resize":
        return np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    short = round(size * 256 / 224)
    width, height = image.size
    scale = short / min(width, height)
    image = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.BILINEAR)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


@attrs.frozen
class FolderScan:
    """What a scan of an ImageFolder found: per class the readable image files, and what it could not read."""

    classes: list[ClassInfo]
    files: dict[str, list[str]]
    unreadable: list[str]

    @property
    def counts(self) -> dict[str, int]:
        return {folder: len(names) for folder, names in self.files.items()}


def scan_image_folder(root: str | os.PathLike, classes: Sequence[ClassInfo] | None = None, *,
                      verify: bool = True) -> FolderScan:
    """Scan ``root/<folder>/<image>`` once; an empty or missing class folder is an error naming it.

    ``classes`` (from a metadata file) fixes the class order; without it the sorted folder names do.
    Files that are not images, or (with ``verify``) whose header cannot be read, are listed as unreadable.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist or is not a directory")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        if not folders:
            raise ValueError(f"image folder {root} has no class sub-folders")
        classes = [ClassInfo(index=i, name=f, folder=f) for i, f in enumerate(folders)]
    files: dict[str, list[str]] = {}
    unreadable: list[str] = []
    for info in classes:
        directory = root / info.folder
        if not directory.is_dir():
            raise ValueError(f"class {info.index} ({info.name}) has no folder {info.folder!r} under {root}")
        names = []
        for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                unreadable.append(str(path.relative_to(root)))
                continue
            if verify:
                try:
                    with Image.open(path) as image:
                        image.verify()
                except _DECODE_ERRORS:
                    unreadable.append(str(path.relative_to(root)))
                    continue
            names.append(str(path.relative_to(root)))
        if not names:
            raise ValueError(f"class {info.index} ({info.name}) has no readable image in {directory}")
        files[info.folder] = names
    return FolderScan(list(classes), files, unreadable)


@attrs.frozen
class FolderConfig:
    """Identifies a folder's images as loaded (the evidence cache key)."""

    root: str
    files: tuple[str, ...]
    image_size: int
    mode: str

    def fingerprint(self) -> str:
        text = json.dumps([self.root, self.files, self.image_size, self.mode])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class FolderSplit:
    """One split of a folder: uint8 images (N, H, W, 3) and labels, loaded once on first use."""

    def __init__(self, root: Path, files: Sequence[tuple[str, int]], image_size: int, mode: str) -> None:
        self.root, self._files, self.image_size, self.mode = root, list(files), image_size, mode
        self.skipped: list[str] = []

    @cached_property
    def _loaded(self) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for name, label in self._files:
            try:
                images.append(load_image(self.root / name, self.image_size, self.mode))
                labels.append(label)
            except _DECODE_ERRORS:
                self.skipped.append(name)
        if not images:
            raise ValueError(f"no image of {self.root} could be decoded")
        return np.stack(images), np.asarray(labels, dtype=np.int64)

    @property
    def images(self) -> np.ndarray:
        return self._loaded[0]

    @property
    def labels(self) -> np.ndarray:
        return self._loaded[1]

    @property
    def bias_kinds(self) -> np.ndarray:
        return np.full(len(self), -1, dtype=np.int64)

    object_masks = None
    bias_masks = None

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self, indices: Sequence[int] | np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as float (N, 3, H, W) in [0, 1] and labels, optionally of ``indices`` only."""
        images, labels = self.images, self.labels
        if indices is not None:
            images, labels = images[np.asarray(indices)], labels[np.asarray(indices)]
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255, \
            torch.from_numpy(labels)


class FolderBenchmark:
    """A registered ImageFolder (and optional validation folder) with the benchmark's interface."""

    biases = ()
    has_masks = False

    def __init__(self, root: str | os.PathLike, classes: Sequence[ClassInfo], files: dict[str, list[str]], *,
                 val_root: str | os.PathLike | None = None, val_files: dict[str, list[str]] | None = None,
                 image_size: int = 224, mode: str = "resize_crop") -> None:
        self.class_infos = list(classes)
        label_of = {c.folder: c.index for c in self.class_infos}
        train = [(name, label_of[folder]) for folder, names in files.items() for name in names]
        self._splits = {"train": FolderSplit(Path(root), train, image_size, mode)}
        if val_root is not None and val_files:
            val = [(name, label_of[folder]) for folder, names in val_files.items() for name in names]
            self._splits["test"] = FolderSplit(Path(val_root), val, image_size, mode)
        self.config = FolderConfig(str(root), tuple(n for n, _ in train), image_size, mode)

    @property
    def num_classes(self) -> int:
        return len(self.class_infos)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.class_infos]

    @property
    def class_descriptions(self) -> list[str]:
        return [c.description or c.name for c in self.class_infos]

    def split(self, name: str) -> FolderSplit:
        """``train``; ``test`` (the validation folder, else the train folder); ``flipped`` = ``test``."""
        if name == "train":
            return self._splits["train"]
        if name in ("test", "flipped", "val"):
            return self._splits.get("test", self._splits["train"])
        raise ValueError(f"unknown split {name!r}; an image folder has train and test")
