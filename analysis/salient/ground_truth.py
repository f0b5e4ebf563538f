"""Ground truth of a (class, feature) on the planted-bias benchmark, from where its NAMs fall.

The region with the highest mean NAM value wins: the garment (``main_object``), the planted cue
(``separate_object`` for a watermark or an added object, ``background`` for a texture), or the
rest of the image (``background``). Mean values, not sums, so small regions are not penalised.
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


def feature_truth(nams: np.ndarray, object_masks: np.ndarray, bias_masks: np.ndarray, cue_kind: str | None) -> str:
    """``main_object``, ``separate_object`` or ``background`` for one feature's top images."""
    focus = focus_region(nams, object_masks, bias_masks)
    winner = max(focus, key=focus.get)
    if winner == "object":
        return "main_object"
    if winner == "cue" and cue_kind is not None:
        return CUE_ANSWER[cue_kind]
    return "background"


def is_spurious(answer: str) -> bool:
    return answer in ("separate_object", "background")
