"""Penultimate features r(x), feature importance IV_c and the top images of a feature.

IV_c = mean over images *predicted* c of r(x) ⊙ W[c] (Singla & Feizi §3.2).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Progress = Callable[[int, int, str], None]


def _no_progress(done: int, total: int, message: str) -> None:
    pass


@torch.no_grad()
def collect_features(
    handle, images: torch.Tensor, *, batch_size: int = 256, progress: Progress = _no_progress
) -> tuple[torch.Tensor, torch.Tensor]:
    """r(x) (N, D) and predicted classes (N,) for [0, 1] images (N, 3, H, W), batched."""
    feats, preds = [], []
    n = len(images)
    for start in range(0, n, batch_size):
        out = handle.features_and_maps(images[start:start + batch_size])
        feats.append(out.features.float().cpu())
        preds.append(out.logits.argmax(1).cpu())
        progress(min(start + batch_size, n), n, "features of the training images")
    return torch.cat(feats), torch.cat(preds)


def feature_importance(features: torch.Tensor, predictions: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """IV (C, D): mean r(x) over the images predicted c, times W[c]; zero for a never-predicted class."""
    num_classes = weight.shape[0]
    if features.shape[1] != weight.shape[1]:
        raise ValueError(f"features have {features.shape[1]} dimensions but W has {weight.shape[1]}")
    onehot = torch.nn.functional.one_hot(predictions.long(), num_classes).float()
    counts = onehot.sum(0).clamp(min=1.0)
    mean_features = onehot.T @ features.float() / counts[:, None]
    return mean_features * weight.detach().float().cpu()


def top_features(importance: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (C, k) of the k most important features of each class, most important first."""
    if not 1 <= k <= importance.shape[1]:
        raise ValueError(f"k must be within 1..{importance.shape[1]}, got {k}")
    return importance.topk(k, dim=1).indices


def top_images(features: torch.Tensor, labels: torch.Tensor, cls: int, feature: int, k: int) -> np.ndarray:
    """Dataset indices of the k images of class ``cls`` with the highest r_feature(x), highest first.

    ``labels`` are the true labels (the label-based sets) or the predictions (the panel's images)."""
    members = torch.nonzero(labels == cls).flatten()
    if len(members) == 0:
        raise ValueError(f"class {cls} has no images")
    order = features[members, feature].argsort(descending=True)
    return members[order[:k]].numpy()


def bottom_of_top(features: torch.Tensor, labels: torch.Tensor, cls: int, feature: int, k: int, pool: int = 65
                  ) -> np.ndarray:
    """The k lowest-activating images among the ``pool`` highest of class ``cls`` (lowest last)."""
    top = top_images(features, labels, cls, feature, pool)
    return top[-k:] if len(top) >= k else top
