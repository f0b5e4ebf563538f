"""A simulated crowd: workers who answer from ground truth with a set accuracy.

Lets a study be dry-run before paying anyone. Each worker answers the true option with
probability ``accuracy`` and otherwise a uniformly chosen wrong one.
"""
from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np


@attrs.frozen
class SimulatedWorker:
    name: str
    accuracy: float = attrs.field(default=0.9)
    seed: int = 0

    @accuracy.validator
    def _check_accuracy(self, _attr, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"accuracy must be within [0, 1], got {value}")

    def rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, sum(map(ord, self.name))])


def noisy_choice(truth: str, options: Sequence[str], accuracy: float, rng: np.random.Generator) -> str:
    """The true option with probability ``accuracy``, else a wrong one uniformly."""
    if truth not in options:
        raise ValueError(f"true answer {truth!r} is not among the options {list(options)}")
    wrong = [o for o in options if o != truth]
    if not wrong or rng.random() < accuracy:
        return truth
    return wrong[int(rng.integers(len(wrong)))]


def simulated_crowd(n: int = 5, accuracy: float | Sequence[float] = 0.9, seed: int = 0) -> list[SimulatedWorker]:
    """``n`` simulated workers, with one accuracy for all or one each."""
    accs = [accuracy] * n if isinstance(accuracy, (int, float)) else list(accuracy)
    if len(accs) != n:
        raise ValueError(f"{len(accs)} accuracies given for {n} workers")
    return [SimulatedWorker(name=f"sim{i + 1}", accuracy=float(a), seed=seed) for i, a in enumerate(accs)]
