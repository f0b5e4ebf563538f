"""The Salient evidence of a robust model on a labelled image set, computed in batches.

For every class: the top-k features by IV_c; for each feature its top-k images, the k lowest of
its top-``pool`` images, their NAMs, and the feature-attack images of the top-k.
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
    Progress, _no_progress, bottom_of_top, collect_features, feature_importance, top_features, top_images,
)
from analysis.salient.nam import neural_activation_maps, to_uint8_images


@attrs.define
class FeaturePanel:
    """One (class, feature): what its panels show."""

    cls: int
    feature: int
    rank: int
    importance: float
    top: np.ndarray  # (k,) dataset indices, highest activation first
    bottom: np.ndarray  # (k,) the lowest of the top-`pool`
    top_nams: np.ndarray  # (k, H, W) float32 in [0, 1]
    bottom_nams: np.ndarray  # (k, H, W)
    attacked: np.ndarray  # (k, H, W, 3) uint8

    @property
    def key(self) -> str:
        return f"c{self.cls}-f{self.feature}"


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
            for name in ("top", "bottom", "top_nams", "bottom_nams", "attacked"):
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
                FeaturePanel(**m, **{n: data[f"p{i}_{n}"] for n in ("top", "bottom", "top_nams", "bottom_nams", "attacked")})
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
    tops = [top_images(features, labels, c, f, k_images) for c, f, _ in pairs]
    bottoms = [bottom_of_top(features, labels, c, f, k_images, pool) for c, f, _ in pairs]
    progress(0, 1, f"NAMs of {len(pairs)} features")
    flat_idx = np.concatenate(tops + bottoms)
    flat_feat = np.concatenate([np.full(len(t), f) for t, (_, f, _) in zip(tops + bottoms, pairs + pairs)])
    nams = _nams_for(handle, images, flat_idx, flat_feat, batch_size)

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
    offset_top, offset_bottom, n_top = 0, sum(len(t) for t in tops), 0
    for (c, f, rank), top, bottom in zip(pairs, tops, bottoms):
        panels.append(FeaturePanel(
            cls=c, feature=f, rank=rank, importance=float(importance[c, f]),
            top=top, bottom=bottom,
            top_nams=nams[offset_top:offset_top + len(top)],
            bottom_nams=nams[offset_bottom:offset_bottom + len(bottom)],
            attacked=attacked_u8[n_top:n_top + len(top)],
        ))
        offset_top += len(top)
        offset_bottom += len(bottom)
        n_top += len(top)
    settings = {"k_features": k_features, "k_images": k_images, "pool": pool, "attack_steps": attack_steps,
                "attack_step_size": attack_step_size, "classes": classes}
    return SalientEvidence(importance=importance.numpy(), top_features=chosen.numpy(), examples=examples,
                           panels=panels, settings=settings)
