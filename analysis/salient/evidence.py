"""The Salient evidence of a robust model on a labelled image set, computed in batches.

For every class c: the top-k features by IV_c; for each feature i the panel's top-k images among
those the model *predicts* as c (paper App. C), their NAMs and feature-attack images; and the
label-based sets of the validation HIT and the Salient dataset (App. D, §3.4): D(c, i) = the
top-``pool`` images *labelled* c by r_i, its top-k and its k lowest, with NAMs.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np
import torch

from analysis.salient.attack import feature_attack, reference_step
from analysis.salient.importance import (
    Progress,
    _no_progress,
    collect_features,
    feature_importance,
    top_features,
    top_images,
)
from analysis.salient.nam import neural_activation_maps, to_uint8_images


@attrs.define
class FeaturePanel:
    """One (class, feature): what its panels show."""

    cls: int
    feature: int
    rank: int
    importance: float
    top: np.ndarray  # (k,) panel images: predicted `cls`, highest activation first (dataset indices)
    bottom: np.ndarray  # (k,) the lowest of `pool` (label-based), lowest last
    top_nams: np.ndarray  # (k, H, W) float32 in [0, 1]
    bottom_nams: np.ndarray  # (k, H, W)
    attacked: np.ndarray  # (k, H, W, 3) uint8, feature attacks of `top`
    pool: np.ndarray  # (<= pool,) D(c, i): the images labelled `cls` with the highest activation
    label_top: np.ndarray  # (k,) the first k of `pool`: set A of the heatmap validation
    label_top_nams: np.ndarray  # (k, H, W)
    grouping: str = "prediction"  # "label" when fewer than k images are predicted `cls`

    @property
    def key(self) -> str:
        return f"c{self.cls}-f{self.feature}"


PANEL_ARRAYS = ("top", "bottom", "top_nams", "bottom_nams", "attacked", "pool", "label_top", "label_top_nams")


@attrs.define
class SalientEvidence:
    importance: np.ndarray  # (C, D)
    top_features: np.ndarray  # (C, k)
    examples: np.ndarray  # (C, n_examples) dataset indices of example images per class
    panels: list[FeaturePanel]
    settings: dict

    def panel(self, cls: int, feature: int) -> FeaturePanel:
        for p in self.panels:
            if p.cls == cls and p.feature == feature:
                return p
        raise KeyError(f"no panel for class {cls}, feature {feature}")

    def save(self, path: Path) -> Path:
        arrays = {"importance": self.importance, "top_features": self.top_features, "examples": self.examples}
        meta = []
        for i, p in enumerate(self.panels):
            meta.append({"cls": p.cls, "feature": p.feature, "rank": p.rank, "importance": p.importance})
            meta[-1]["grouping"] = p.grouping
            for name in PANEL_ARRAYS:
                arrays[f"p{i}_{name}"] = getattr(p, name)
        arrays["meta"] = np.frombuffer(json.dumps({"panels": meta, "settings": self.settings}).encode(), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> "SalientEvidence":
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            panels = [
                FeaturePanel(**m, **{n: data[f"p{i}_{n}"] for n in PANEL_ARRAYS})
                for i, m in enumerate(meta["panels"])
            ]
            return cls(importance=data["importance"], top_features=data["top_features"], examples=data["examples"],
                       panels=panels, settings=meta["settings"])


@torch.no_grad()
def _nams_for(handle, images: torch.Tensor, indices: np.ndarray, features: np.ndarray, batch_size: int) -> np.ndarray:
    """NAM of feature ``features[j]`` on image ``indices[j]``, for all j, batched."""
    size = tuple(images.shape[-2:])
    out = []
    for start in range(0, len(indices), batch_size):
        idx = torch.as_tensor(indices[start:start + batch_size])
        maps = handle.feature_maps(images[idx])
        out.append(neural_activation_maps(maps, torch.as_tensor(features[start:start + batch_size]), size).cpu())
    return torch.cat(out).numpy().astype(np.float32)


def compute_salient_evidence(
    handle,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    classes: Sequence[int] | None = None,
    k_features: int = 5,
    k_images: int = 5,
    pool: int = 65,
    attack_steps: int = 100,
    attack_step_size: float | None = None,
    n_examples: int = 3,
    batch_size: int = 256,
    seed: int = 0,
    progress: Progress = _no_progress,
) -> SalientEvidence:
    """Everything the feature-panel and heatmap-validation tasks show, for ``classes`` (default all).

    ``attack_step_size`` None: the reference's step scaled to the image size (:func:`reference_step`).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W) in [0, 1], got {tuple(images.shape)}")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    torch.set_flush_denormal(True)  # denormal floats slow CPU gradient steps several-fold
    if attack_step_size is None:
        attack_step_size = reference_step(*images.shape[-2:])
    weight, _ = handle.last_linear
    classes = list(range(weight.shape[0])) if classes is None else [int(c) for c in classes]
    features, predictions = collect_features(handle, images, batch_size=batch_size, progress=progress)
    importance = feature_importance(features, predictions, weight)
    chosen = top_features(importance, k_features)

    rng = np.random.default_rng(seed)
    examples = np.stack([
        rng.choice(np.flatnonzero(labels.numpy() == c), size=n_examples, replace=False)
        for c in range(weight.shape[0])
    ]) if all((labels == c).sum() >= n_examples for c in range(weight.shape[0])) else np.zeros((0, n_examples), int)

    pairs = [(c, int(f), rank) for c in classes for rank, f in enumerate(chosen[c].tolist())]
    groupings = {c: "prediction" if int((predictions == c).sum()) >= k_images else "label" for c in classes}
    tops = [top_images(features, predictions if groupings[c] == "prediction" else labels, c, f, k_images)
            for c, f, _ in pairs]
    pools = [top_images(features, labels, c, f, pool) for c, f, _ in pairs]
    label_tops = [p[:k_images] for p in pools]
    bottoms = [p[-k_images:] for p in pools]
    progress(0, 1, f"NAMs of {len(pairs)} features")
    sets = tops + label_tops + bottoms
    flat_idx = np.concatenate(sets)
    flat_feat = np.concatenate([np.full(len(t), f) for t, (_, f, _) in zip(sets, pairs * 3)])
    nams = _nams_for(handle, images, flat_idx, flat_feat, batch_size)
    offsets = np.cumsum([0] + [len(t) for t in sets])
    set_nams = [nams[offsets[j]:offsets[j + 1]] for j in range(len(sets))]

    top_idx = np.concatenate(tops)
    top_feat = np.concatenate([np.full(len(t), f) for t, (_, f, _) in zip(tops, pairs)])
    attacked = []
    chunk = 64
    for start in range(0, len(top_idx), chunk):
        progress(start, len(top_idx), f"feature attacks ({attack_steps} steps)")
        x = images[torch.as_tensor(top_idx[start:start + chunk])]
        with torch.enable_grad():
            attacked.append(feature_attack(handle, x, torch.as_tensor(top_feat[start:start + chunk]),
                                           steps=attack_steps, step_size=attack_step_size, batch_size=chunk))
    attacked_u8 = to_uint8_images(torch.cat(attacked))
    progress(len(top_idx), len(top_idx), "evidence computed")

    panels = []
    n_pairs, n_top = len(pairs), 0
    for j, (c, f, rank) in enumerate(pairs):
        top = tops[j]
        panels.append(FeaturePanel(
            cls=c, feature=f, rank=rank, importance=float(importance[c, f]),
            top=top, bottom=bottoms[j], top_nams=set_nams[j], bottom_nams=set_nams[2 * n_pairs + j],
            attacked=attacked_u8[n_top:n_top + len(top)], pool=pools[j], label_top=label_tops[j],
            label_top_nams=set_nams[n_pairs + j], grouping=groupings[c],
        ))
        n_top += len(top)
    settings = {"k_features": k_features, "k_images": k_images, "pool": pool, "attack_steps": attack_steps,
                "attack_step_size": attack_step_size, "classes": classes}
    return SalientEvidence(importance=importance.numpy(), top_features=chosen.numpy(), examples=examples,
                           panels=panels, settings=settings)
