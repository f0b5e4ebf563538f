"""SpRAy clusters on the planted-bias benchmark: what a cluster's heatmaps focus on, its cue shares, examples."""
from __future__ import annotations

import numpy as np

from analysis.salient.ground_truth import feature_truth

#: The crowd's answer for a cluster whose heatmaps sit on each planted cue.
CUE_FOCUS = {"background": "background", "watermark": "artifact", "object": "separate_object"}


def positive_maps(relevance: np.ndarray) -> np.ndarray:
    """Relevance (n, H, W) -> per-image [0, 1] maps of its positive part (for overlays and truth)."""
    pos = np.clip(relevance, 0, None)
    peak = pos.reshape(len(pos), -1).max(axis=1)
    return pos / np.where(peak > 0, peak, 1.0)[:, None, None]


def cluster_truth(bench, indices: np.ndarray, relevance: np.ndarray) -> str:
    """What the cluster's heatmaps focus on, from the planted masks (the simulated crowd's truth)."""
    from analysis.salient.benchmark_inputs import panel_cue_kind

    train = bench.split("train")
    cue = panel_cue_kind(bench, indices)
    answer = feature_truth(positive_maps(relevance), train.object_masks[indices], train.bias_masks[indices], cue)
    if answer == "main_object":
        return "object"
    if answer == "separate_object" and cue is not None:
        return CUE_FOCUS[cue]
    return answer


def cue_share(bench, indices: np.ndarray) -> dict[str, float]:
    """Share of the images carrying each planted cue."""
    from analysis.datasets.benchmark import BIAS_KINDS

    kinds = bench.split("train").bias_kinds[np.asarray(indices)]
    return {kind: float(np.mean(kinds == i)) for i, kind in enumerate(BIAS_KINDS)}


def typical_members(embedding: np.ndarray, members: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` members nearest their cluster's centre in the spectral embedding (typical examples)."""
    centre = embedding[members].mean(axis=0)
    order = np.argsort(np.linalg.norm(embedding[members] - centre, axis=1), kind="stable")
    return members[order[:n]]
