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


def combine_masks(nams: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Core and spurious masks from NAMs (F, ..., H, W) of F features labelled ``core``/``spurious``."""
    labels = np.asarray(labels)
    if len(labels) != len(nams):
        raise ValueError(f"{len(nams)} NAMs but {len(labels)} labels")
    bad = set(labels) - set(LABELS)
    if bad:
        raise ValueError(f"labels must be core or spurious, got {sorted(bad)}")
    zero = np.zeros(nams.shape[1:], dtype=np.float32)
    core = nams[labels == "core"].max(axis=0) if (labels == "core").any() else zero
    spurious = nams[labels == "spurious"].max(axis=0) if (labels == "spurious").any() else zero
    return core.astype(np.float32), spurious.astype(np.float32)


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

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


def build_samples(handle, images: np.ndarray, feature_labels: Mapping[int, Mapping[int, str]],
                  top_images: Mapping[int, np.ndarray], class_names: list[str], batch_size: int = 128
                  ) -> list[SalientSample]:
    """Superseded (kept until the feature-panel outputs switch to :mod:`analysis.salient.dataset`):
    masks over all of a class's labelled features on the given images, not per set D(c, i).

    ``feature_labels[c][f]`` is ``core``/``spurious``; ``top_images[c]`` the dataset indices of
    class c's samples (the union of its features' top images); ``images`` uint8 (N, H, W, 3).
    """
    import torch

    from analysis.salient.nam import neural_activation_maps

    samples = []
    for cls, labelled in sorted(feature_labels.items()):
        if not labelled:
            continue
        indices = np.asarray(sorted(set(int(i) for i in top_images[cls])))
        feats = np.asarray(list(labelled))
        kinds = np.asarray([labelled[f] for f in feats])
        x = torch.from_numpy(np.ascontiguousarray(images[indices])).permute(0, 3, 1, 2).float() / 255
        nams = []
        with torch.no_grad():
            for start in range(0, len(indices), batch_size):
                maps = handle.feature_maps(x[start:start + batch_size])
                per_feature = [neural_activation_maps(maps, int(f), tuple(x.shape[-2:])).cpu().numpy() for f in feats]
                nams.append(np.stack(per_feature, axis=1))  # (b, F, H, W)
        nams_all = np.concatenate(nams)
        for j, index in enumerate(indices):
            core, spurious = combine_masks(nams_all[j], kinds)
            samples.append(SalientSample(
                index=int(index), cls=int(cls), class_name=class_names[cls],
                core_features=tuple(int(f) for f in feats[kinds == "core"]),
                spurious_features=tuple(int(f) for f in feats[kinds == "spurious"]),
                core_mask=core, spurious_mask=spurious,
            ))
    return samples
