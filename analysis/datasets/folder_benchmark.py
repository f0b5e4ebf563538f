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
from pathlib import Path

import attrs
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from analysis.datasets.metadata import ClassInfo
from analysis.image_archives import IMAGE_EXTENSIONS

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
    inside = root.resolve()
    for info in classes:
        directory = root / info.folder
        if not directory.resolve().is_relative_to(inside) or directory.resolve() == inside:
            raise ValueError(f"class {info.index} ({info.name}): the folder {info.folder!r} is not inside {root}")
        if not directory.is_dir():
            raise ValueError(f"class {info.index} ({info.name}) has no folder {info.folder!r} under {root}")
        names = []
        for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if not path.resolve().is_relative_to(inside):
                unreadable.append(str(path.relative_to(root)))
                continue
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


class FolderImages(torch.utils.data.Dataset):
    """``(image, label)`` of an explicit file list: float (3, size, size) in [0, 1]; an undecodable file raises
    ``OSError``. ``samples`` and ``targets`` as torchvision's ImageFolder (paths, labels without decoding)."""

    def __init__(self, root: str | os.PathLike, files: Sequence[tuple[str, int]], image_size: int,
                 mode: str = "resize_crop") -> None:
        self.root, self.image_size, self.mode = Path(root), int(image_size), mode
        self.samples = [(str(self.root / name), int(label)) for name, label in files]
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        try:
            image = load_image(path, self.image_size, self.mode)
        except _DECODE_ERRORS as exc:
            raise OSError(f"cannot decode {path}: {exc}") from exc
        return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255, label


class LazyImages:
    """A split's images as uint8 (N, size, size, 3), decoded only when indexed; an undecodable file
    shows as black and is listed in ``skipped``."""

    def __init__(self, dataset: FolderImages) -> None:
        self.dataset = dataset
        self.skipped: set[int] = set()

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.dataset.image_size, self.dataset.image_size, 3)

    def _one(self, index: int) -> np.ndarray:
        try:
            return load_image(self.dataset.samples[index][0], self.dataset.image_size, self.dataset.mode)
        except _DECODE_ERRORS:
            self.skipped.add(int(index))
            return np.zeros(self.shape[1:], np.uint8)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self._one(int(index))
        positions = np.arange(len(self))[index]
        return np.stack([self._one(int(i)) for i in np.atleast_1d(positions)]) if np.size(positions) else \
            np.zeros((0, *self.shape[1:]), np.uint8)


class FolderSplit:
    """One split of a folder with the benchmark split's interface; images decoded when used."""

    object_masks = None
    bias_masks = None

    def __init__(self, root: Path, files: Sequence[tuple[str, int]], image_size: int, mode: str) -> None:
        self.dataset = FolderImages(root, files, image_size, mode)
        self.images = LazyImages(self.dataset)
        self.labels = np.asarray(self.dataset.targets, dtype=np.int64)

    @property
    def skipped(self) -> list[int]:
        return sorted(self.images.skipped)

    @property
    def bias_kinds(self) -> np.ndarray:
        return np.full(len(self), -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self, indices: Sequence[int] | np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as float (N, 3, H, W) in [0, 1] and labels, optionally of ``indices`` only."""
        indices = np.arange(len(self)) if indices is None else np.asarray(indices)
        images = self.images[indices]
        return (torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255,
                torch.from_numpy(self.labels[indices]))


def folder_files(root: str | os.PathLike, classes: Sequence[ClassInfo]) -> list[tuple[str, int]]:
    """(relative path, label) of every image file of the folder, in class then name order (not decoded)."""
    scan = scan_image_folder(root, classes, verify=False)
    label_of = {c.folder: c.index for c in scan.classes}
    return [(name, label_of[folder]) for folder, names in scan.files.items() for name in names]


class FolderBenchmark:
    """A registered ImageFolder (and optional validation folder) with the benchmark's interface."""

    biases = ()
    has_masks = False

    def __init__(self, root: str | os.PathLike, classes: Sequence[ClassInfo], *,
                 val_root: str | os.PathLike | None = None, image_size: int = 224, mode: str = "resize_crop") -> None:
        self.class_infos = list(classes)
        self.roots = {"train": str(root), "test": str(val_root) if val_root else None}
        self.image_size, self.mode = int(image_size), mode
        train = folder_files(root, self.class_infos)
        self._splits = {"train": FolderSplit(Path(root), train, image_size, mode)}
        if val_root:
            self._splits["test"] = FolderSplit(Path(val_root), folder_files(val_root, self.class_infos), image_size,
                                               mode)
        self.config = FolderConfig(str(root), tuple(n for n, _ in train), image_size, mode)

    def data_source_options(self, split: str = "train") -> dict:
        """Options of the streaming ``registered_folder`` data source that reads the same files in the same order."""
        root = self.roots["train"] if split == "train" or not self.roots["test"] else self.roots["test"]
        return {"root": root, "classes": [c.as_dict() for c in self.class_infos], "image_size": self.image_size,
                "mode": self.mode}

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
