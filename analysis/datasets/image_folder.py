"""ImageFolder datasets whose class order comes from a class-metadata file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from torchvision import datasets, transforms

from .metadata import ClassInfo, read_class_metadata


def default_transform(image_size: int = 224) -> Callable:
    """Resize (shorter side ``image_size * 256/224``), centre crop, tensor in [0, 1].

    No normalization: models carry their own (see :class:`analysis.models.ModelHandle`).
    """
    return transforms.Compose([
        transforms.Resize(round(image_size * 256 / 224)),
        transforms.CenterCrop(image_size),
        transforms.ToTensor(),
    ])


class MetadataImageFolder(datasets.ImageFolder):
    """``root/<folder>/<image>`` images labelled by a class-metadata file.

    Parameters
    ----------
    root : path
        Directory with one sub-folder per class.
    metadata : path or sequence of ClassInfo, optional
        Class list (see :mod:`analysis.datasets.metadata`); its ``index`` gives the
        label of each ``folder``, so labels match the model's outputs even when only
        some classes are present on disk.  Without it, sorted folder names are used.
    image_size : int
        Side of the square tensors produced by the default transform.
    transform : callable, optional
        Replaces the default transform.

    Attributes
    ----------
    class_infos : list of ClassInfo
        All classes of the metadata (also those without images).
    unlisted_folders : list of str
        Folders on disk that the metadata does not mention (ignored).
    """

    def __init__(self, root: str | os.PathLike, metadata: str | os.PathLike | Sequence[ClassInfo] | None = None,
                 *, image_size: int = 224, transform: Callable | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist")
        if metadata is None:
            folders = sorted(p.name for p in root.iterdir() if p.is_dir())
            infos = [ClassInfo(index=i, name=f, folder=f) for i, f in enumerate(folders)]
        elif isinstance(metadata, (str, os.PathLike)):
            infos = read_class_metadata(metadata)
        else:
            infos = list(metadata)
        self.class_infos = infos
        listed = {c.folder for c in infos}
        self.unlisted_folders = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in listed)
        present = [c for c in infos if (root / c.folder).is_dir()]
        if not present:
            raise FileNotFoundError(f"none of the {len(infos)} class folders of the metadata exist under {root}")
        super().__init__(str(root), transform=transform or default_transform(image_size), allow_empty=True)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        """Class folders and labels from the metadata (folders absent on disk are skipped)."""
        present = [c for c in self.class_infos if os.path.isdir(os.path.join(directory, c.folder))]
        return [c.folder for c in present], {c.folder: c.index for c in present}

    @property
    def class_names(self) -> list[str]:
        """Readable names in label order (all metadata classes)."""
        return [c.name for c in self.class_infos]
