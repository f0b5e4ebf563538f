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


@attrs.frozen
class CrowdMix:
    """A crowd of varied reliability: good and sloppy workers (accuracies drawn from Beta laws), spammers who
    answer at random, a few very active workers, and ambiguous tasks on which everyone is nearer chance.

    The defaults are a qualified crowd (the Salient ImageNet study admitted MTurk workers with a high approval
    rate and rejected short or generic reasons): 5 % spammers, 5 % sloppy workers, 5 % ambiguous tasks.
    """

    workers: int = 40
    good: tuple[float, float] = (18.0, 2.0)
    """Beta law of a good worker's accuracy (mean 0.9)."""
    sloppy: tuple[float, float] = (7.0, 3.0)
    """Beta law of a sloppy worker's accuracy (mean 0.7)."""
    sloppy_share: float = 0.05
    spammer_share: float = 0.05
    ambiguous_share: float = 0.05
    ambiguity: float = 0.4
    """On an ambiguous task a worker's edge over chance shrinks to this share."""


MIXED_CROWD = CrowdMix(sloppy_share=0.1, spammer_share=0.1, ambiguous_share=0.1)
"""Twice the defaults' sloppy workers, spammers and ambiguous tasks."""
NOISY_CROWD = CrowdMix(good=(17.0, 3.0), sloppy_share=0.2, spammer_share=0.2, ambiguous_share=0.2)
"""A noisy crowd: good workers at 0.85, a fifth sloppy, a fifth spammers, a fifth of the tasks ambiguous."""


def mixed_crowd_answers(truths: Sequence[str], options: Sequence[str], per_task: int, mix: CrowdMix = CrowdMix(),
                        seed: int = 0) -> list[tuple[int, str, str]]:
    """``(task index, worker, answer)`` rows: ``per_task`` distinct workers of ``mix`` answer each task.

    Workers are drawn in proportion to a log-normal activity, so a few do much of the work.
    """
    rng = np.random.default_rng(seed)
    if mix.workers < per_task:
        raise ValueError(f"{mix.workers} workers cannot give {per_task} answers per task")
    kinds = rng.choice(3, size=mix.workers, p=[1 - mix.sloppy_share - mix.spammer_share, mix.sloppy_share,
                                              mix.spammer_share])
    accuracy = np.where(kinds == 0, rng.beta(*mix.good, size=mix.workers), rng.beta(*mix.sloppy, size=mix.workers))
    activity = rng.lognormal(0.0, 1.0, size=mix.workers)
    activity /= activity.sum()
    chance = 1.0 / len(options)
    rows = []
    for t, truth in enumerate(truths):
        ambiguous = rng.random() < mix.ambiguous_share
        for w in rng.choice(mix.workers, size=per_task, replace=False, p=activity):
            if kinds[w] == 2:
                answer = options[int(rng.integers(len(options)))]
            else:
                acc = chance + (accuracy[w] - chance) * (mix.ambiguity if ambiguous else 1.0)
                answer = noisy_choice(truth, options, float(acc), rng)
            rows.append((t, f"w{w}", answer))
    return rows
