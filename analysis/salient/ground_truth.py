"""Ground truth of a (class, feature) on the planted-bias benchmark, from where its NAMs fall.

Regions are compared by their mean NAM value (so small regions are not penalised): the garment,
the planted cue, and the rest of the image. A feature is ``main_object`` when the garment's mean
is at least ``object_margin`` times that of every other region; otherwise the hotter non-object
region decides: the cue (``separate_object`` for a watermark or an added object, ``background``
for a texture) or the rest (``background``). The margin encodes how a person reads a heatmap
that is nearly as red over the background as over the garment: as highlighting the background.
"""
from __future__ import annotations

import numpy as np

CUE_ANSWER = {"background": "background", "watermark": "separate_object", "object": "separate_object"}


def focus_region(nams: np.ndarray, object_masks: np.ndarray, bias_masks: np.ndarray) -> dict[str, float]:
    """Mean NAM over the object, the planted cue and the rest, pooled over the given images."""
    obj = object_masks.astype(bool)
    cue = bias_masks.astype(bool) & ~obj
    rest = ~obj & ~cue

    def mean(mask: np.ndarray) -> float:
        return float(nams[mask].mean()) if mask.any() else 0.0

    return {"object": mean(obj), "cue": mean(cue), "rest": mean(rest)}


def feature_truth(nams: np.ndarray, object_masks: np.ndarray, bias_masks: np.ndarray, cue_kind: str | None,
                  object_margin: float = 1.5) -> str:
    """``main_object``, ``separate_object`` or ``background`` for one feature's top images."""
    focus = focus_region(nams, object_masks, bias_masks)
    if focus["object"] >= object_margin * max(focus["cue"], focus["rest"]):
        return "main_object"
    if focus["cue"] >= focus["rest"] and cue_kind is not None:
        return CUE_ANSWER[cue_kind]
    return "background"

