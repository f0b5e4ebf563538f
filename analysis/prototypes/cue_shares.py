"""Bias in prototypes vs criticisms (Stock & Cisse §3.4's attribute-share analysis) on the benchmark.

The paper counts an attribute (e.g. the people shown with a class) among each selection's images;
on the planted-bias benchmark the attribute is the planted cue. Per class, selector and role
(prototypes / criticisms): how many of the selected images carry a planted cue, beside the share
among all of the class's images (the base rate a selection without bias would show).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

ROLES = ("prototypes", "criticisms")
COLUMNS = ["class", "class_name", "selector", "role", "images", "cue_images", "cue_share_percent",
           "class_cue_percent"]


def cue_share_table(selections: Mapping[str, Mapping], has_cue: np.ndarray, labels: np.ndarray,
                    class_names: Sequence[str]) -> pd.DataFrame:
    """Share of planted-cue images among each selector's prototypes and criticisms, per class.

    ``selections``: ``{str(class): {"selections": {selector: {"prototypes": [...], "criticisms": [...]}}}}``
    with dataset indices (the form the class-assignment study stores); ``has_cue`` (N,) bool and
    ``labels`` (N,) over the same dataset (e.g. ``bias_kinds >= 0`` and the labels of the train split).
    A role without images (Random has no criticisms) is left out.
    """
    has_cue, labels = np.asarray(has_cue, dtype=bool), np.asarray(labels)
    if has_cue.shape != labels.shape:
        raise ValueError(f"has_cue {has_cue.shape} and labels {labels.shape} differ in shape")
    rows = []
    for key, entry in sorted(selections.items(), key=lambda kv: int(kv[0])):
        cls = int(key)
        members = labels == cls
        base = 100 * float(has_cue[members].mean()) if members.any() else float("nan")
        for selector, chosen in entry["selections"].items():
            for role in ROLES:
                indices = np.asarray(chosen.get(role, []), dtype=np.int64)
                if not len(indices):
                    continue
                if indices.max() >= len(has_cue) or (labels[indices] != cls).any():
                    raise ValueError(f"{selector} {role} of class {cls} are not images of that class")
                k = int(has_cue[indices].sum())
                rows.append({"class": cls, "class_name": class_names[cls], "selector": selector, "role": role,
                             "images": len(indices), "cue_images": k, "cue_share_percent": 100 * k / len(indices),
                             "class_cue_percent": base})
    return pd.DataFrame(rows, columns=COLUMNS)


def cue_share_summary(table: pd.DataFrame, min_class_cue_percent: float = 0.0) -> pd.DataFrame:
    """Per selector and role, pooled over the classes whose cue rate exceeds ``min_class_cue_percent``
    (default: the classes with any cue): images, cue images and their share."""
    rows = table[table["class_cue_percent"] > min_class_cue_percent]
    out = rows.groupby(["selector", "role"], sort=True).agg(
        classes=("class", "nunique"), images=("images", "sum"), cue_images=("cue_images", "sum")).reset_index()
    out["cue_share_percent"] = 100 * out["cue_images"] / out["images"].where(out["images"] > 0)
    return out
