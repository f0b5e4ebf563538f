"""The prototypes pass (Stock & Cisse §3.3-§3.4): features, true-class probability and, optionally, BIM flip
steps per image."""
from __future__ import annotations

import attrs
import numpy as np
import torch

from analysis.prototypes.adversarial import FlipSteps, bim_flip_steps

from .partial import Partial
from .spec import Batch, PerImagePass, register_pass


@attrs.frozen
class PrototypeFeatures:
    """Per readable image, in pass order: dataset ``indices``, ``labels``, r(x) ``features`` (N, D) float32,
    ``probs`` p(label | x) float64 and the BIM ``flips`` (None without attack)."""

    indices: np.ndarray
    labels: np.ndarray
    features: np.ndarray
    probs: np.ndarray
    flips: FlipSteps | None
    skipped: np.ndarray


@register_pass("prototype_features")
@attrs.frozen
class PrototypeFeaturesPass(PerImagePass):
    """Parameters.

    Attributes
    ----------
    attack_steps : int
        BIM steps for the Adv selector (the paper's M = 10); 0 skips the attack.
    attack_eps : float
        BIM step size on [0, 1] images.
    """

    result = PrototypeFeatures
    attack_steps: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    attack_eps: float = 0.001

    @property
    def forward_only(self) -> bool:
        return self.attack_steps == 0

    def image_arrays(self, handle, batch: Batch) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = handle.features_and_maps(batch.images)
            probs = torch.softmax(out.logits.double(), 1).gather(1, batch.labels[:, None])[:, 0]
        arrays = {"features": out.features.float().cpu().numpy(), "probs": probs.cpu().numpy()}
        if self.attack_steps:
            flips = bim_flip_steps(handle, batch.images, batch.labels, max_steps=self.attack_steps,
                                   eps=self.attack_eps, batch_size=len(batch.images))
            arrays.update(flip_steps=flips.steps, flip_margin=flips.margin)
        return arrays

    def finish(self, merged: Partial) -> "PrototypeFeatures":
        a = merged.arrays
        flips = FlipSteps(a["flip_steps"], a["flip_margin"], self.attack_steps) if self.attack_steps else None
        return PrototypeFeatures(indices=a["indices"], labels=a["labels"], features=a["features"], probs=a["probs"],
                                 flips=flips, skipped=merged.skipped)
