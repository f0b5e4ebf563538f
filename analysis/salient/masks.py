"""Salient dataset samples and their export: per image its per-feature NAMs and the soft core and
spurious masks (elementwise max over the features of each label whose set D(c, i) contains the
image), written as PNG (0-255) with CSV + JSON indexes. :mod:`analysis.salient.dataset` builds them."""
from __future__ import annotations

import io
import json
from collections.abc import Mapping

import attrs
import numpy as np
import pandas as pd
from PIL import Image

LABELS = ("core", "spurious")


@attrs.frozen
class SalientSample:
    index: int  # dataset index
    cls: int
    class_name: str
    core_features: tuple[int, ...]  # the core features whose set D(c, i) contains the image
    spurious_features: tuple[int, ...]
    core_mask: np.ndarray  # (H, W) float in [0, 1]
    spurious_mask: np.ndarray
    feature_masks: dict[int, np.ndarray] = attrs.field(factory=dict)  # feature -> its NAM on this image


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def mask_to_png(mask: np.ndarray) -> bytes:
    return _png(np.clip(np.round(mask * 255), 0, 255).astype(np.uint8))


def salient_dataset_files(samples: list[SalientSample], images: Mapping[int, np.ndarray],
                          feature_labels: pd.DataFrame) -> dict[str, bytes | str]:
    """Name -> content of the export: images/, masks/core/, masks/spurious/, masks/feature_<i>/,
    index.csv/.json (one row per image), feature_masks.csv/.json (image, class, feature, label,
    mask; one row per image and feature whose set contains it) and features.csv (``feature_labels``)."""
    files: dict[str, bytes | str] = {}
    rows, feature_rows = [], []
    for s in samples:
        stem = f"{s.cls:03d}_{s.index:06d}"
        files[f"images/{stem}.png"] = _png(images[s.index])
        files[f"masks/core/{stem}.png"] = mask_to_png(s.core_mask)
        files[f"masks/spurious/{stem}.png"] = mask_to_png(s.spurious_mask)
        for feature, mask in s.feature_masks.items():
            name = f"masks/feature_{feature}/{stem}.png"
            files[name] = mask_to_png(mask)
            feature_rows.append({"sample": s.index, "class": s.cls, "class_name": s.class_name, "feature": feature,
                                 "label": "core" if feature in s.core_features else "spurious",
                                 "image": f"images/{stem}.png", "mask": name})
        rows.append({
            "sample": s.index, "class": s.cls, "class_name": s.class_name, "image": f"images/{stem}.png",
            "core_mask": f"masks/core/{stem}.png", "spurious_mask": f"masks/spurious/{stem}.png",
            "core_features": " ".join(map(str, s.core_features)),
            "spurious_features": " ".join(map(str, s.spurious_features)),
        })
    files["index.csv"] = pd.DataFrame(rows).to_csv(index=False, lineterminator="\n")
    files["index.json"] = json.dumps(rows, indent=1)
    files["feature_masks.csv"] = pd.DataFrame(
        feature_rows, columns=["sample", "class", "class_name", "feature", "label", "image", "mask"]
    ).to_csv(index=False, lineterminator="\n")
    files["feature_masks.json"] = json.dumps(feature_rows, indent=1)
    files["features.csv"] = feature_labels.to_csv(index=False, lineterminator="\n")
    return files
