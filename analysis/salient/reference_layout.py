"""The Salient dataset in the layout the reference code reads (singlasahil14/salient_imagenet,
``inspection_utils.SalientImageNet(images_path, masks_path, class_index, feature_indices)``).

Under one root (both ``images_path`` and ``masks_path`` of the reference class):

* ``wordnet_dict.py``: a Python dict literal ``{class_index: wordnet_id}`` (the reference ``eval``s it);
* ``<wordnet_id>/image_names_map.csv``: one column per labelled feature index of the class, holding the
  names of the images of D(c, i), highest activation first (§3.4);
* ``<wordnet_id>/feature_<i>/<image>.JPEG``: the NAM of feature i on that image, 8-bit grey (the soft mask);
* ``train/<wordnet_id>/<image>.JPEG``: the image itself (ImageNet's ``train/<wnid>/<name>.JPEG``), since
  the images of the built-in benchmark and of a registered folder are not ImageNet files.

The reference reads an image with ``Resize(256), CenterCrop(224)`` and builds the mask as
``np.maximum(np.zeros(image_tensor.shape[1:]), mask)``, so a mask file must be ``crop_size`` square:
images and masks are written at ``size`` × ``size`` (default 224, the reference's defaults), and the
same transform then crops both alike. ``pandas.read_csv`` needs columns of one length: a shorter D(c, i)
(a class with fewer images than the pool) repeats its last name, which the reference's ``np.unique``
and ``np.maximum`` make a no-op. Class folders are the class names when they are WordNet ids
(``n01440764``), otherwise the name made path-safe.
"""
from __future__ import annotations

import io
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from analysis.exports import table_to_safe_csv

REFERENCE_SIZE = 224
WNID = re.compile(r"^n\d{8}$")


def class_folders(class_names: Sequence[str]) -> list[str]:
    """A unique, path-safe folder name per class (its WordNet id when the name is one)."""
    folders: list[str] = []
    for i, name in enumerate(class_names):
        folder = name if WNID.match(name) else (re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_-") or f"class_{i}")
        if folder in folders:
            folder = f"{folder}_{i}"
        folders.append(folder)
    return folders


def _jpeg(array: np.ndarray, size: int) -> bytes:
    image = Image.fromarray(array)
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def image_name(folder: str, index: int) -> str:
    """ImageNet-style ``<wnid>_<n>``: never read as a number by ``pandas.read_csv``."""
    return f"{folder}_{index}"


def reference_layout_files(dataset, images: np.ndarray, class_names: Sequence[str], *,
                           size: int = REFERENCE_SIZE) -> dict[str, bytes | str]:
    """Name -> content of the layout above for a :class:`~analysis.salient.dataset.SalientDataset`;
    ``images`` uint8 (N, H, W, 3) indexed by its dataset indices."""
    folders = class_folders(class_names)
    files: dict[str, bytes | str] = {
        "wordnet_dict.py": repr({i: folder for i, folder in enumerate(folders)}) + "\n"}
    written: set[int] = set()
    for cls in dataset.classes():
        folder = folders[cls]
        columns = {}
        sets = sorted(dataset.features(cls), key=lambda s: s.feature)
        longest = max(len(s.indices) for s in sets)
        for s in sets:
            names = [image_name(folder, int(i)) for i in s.indices]
            for name, index, nam in zip(names, s.indices, s.nams):
                files[f"{folder}/feature_{s.feature}/{name}.JPEG"] = _jpeg(
                    np.clip(np.round(nam * 255), 0, 255).astype(np.uint8), size)
                if int(index) not in written:
                    files[f"train/{folder}/{name}.JPEG"] = _jpeg(images[int(index)], size)
                    written.add(int(index))
            if names:
                columns[str(s.feature)] = names + names[-1:] * (longest - len(names))
        files[f"{folder}/image_names_map.csv"] = table_to_safe_csv(pd.DataFrame(columns))
    return files
