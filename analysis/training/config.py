"""A training run's settings (:class:`TrainConfig`) and the demo models' defaults, without torch.

The web process checks a study's JSON training overrides with :func:`study_configs` before any job runs
(``annotation/task_kinds/benchmark.py``); :mod:`.trainer` trains with them.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import attrs

from analysis.config_overrides import config_from_overrides
from analysis.datasets.benchmark_config import BenchmarkConfig

FLAVOURS = ("standard", "robust")
#: Threads of every training run unless a config says otherwise, whatever ``OMP_NUM_THREADS`` is, so that
#: a rebuild (a test run with one thread, a demo with two) trains the same weights.
TRAIN_THREADS = 2
_AT_LEAST_1 = attrs.validators.ge(1)


@attrs.frozen
class TrainConfig:
    """Hyper-parameters of one training run.

    Attributes
    ----------
    flavour : {"standard", "robust"}
        Plain cross-entropy, or adversarial training with L2 PGD.
    width : int
        First-stage width of :class:`SmallResNet`.
    epochs : int
    batch_size : int
    optimizer : {"sgd", "adam"}
        SGD with Nesterov momentum, or AdamW.
    lr : float
        Peak learning rate of the one-cycle SGD schedule (constant below 20 steps).
    weight_decay : float
    max_train_images : int or None
        Use only the first N (shuffled) training images.
    eps, pgd_steps, pgd_step_size : float, int, float or None
        L2 PGD settings for the robust flavour (pixels in [0, 1]).
    warm_start : bool
        Start from given weights (the pipeline passes the standard model's) instead of
        random ones: robust *fine-tuning*, much cheaper than robust training from scratch.
    robust_eval_images, robust_eval_steps : int
        Test images and PGD steps used to report robust accuracy (robust flavour).
    seed : int
    threads : int or None
        ``torch.set_num_threads`` during training (None: leave as is). Part of the fingerprint: on one
        machine a config gives bit-identical weights, but CPU kernels split their sums by thread, so
        another thread count gives other weights. Hence a fixed default, :data:`TRAIN_THREADS`.
    """

    flavour: str = attrs.field(default="standard", validator=attrs.validators.in_(FLAVOURS))
    width: int = attrs.field(default=32, validator=_AT_LEAST_1)
    epochs: int = attrs.field(default=4, validator=_AT_LEAST_1)
    batch_size: int = attrs.field(default=128, validator=_AT_LEAST_1)
    optimizer: str = attrs.field(default="sgd", validator=attrs.validators.in_(("sgd", "adam")))
    lr: float = attrs.field(default=0.1, validator=attrs.validators.gt(0))
    weight_decay: float = attrs.field(default=5e-4, validator=attrs.validators.ge(0))
    max_train_images: int | None = attrs.field(default=None, validator=attrs.validators.optional(_AT_LEAST_1))
    eps: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    pgd_steps: int = attrs.field(default=3, validator=_AT_LEAST_1)
    pgd_step_size: float | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0)))
    warm_start: bool = False
    robust_eval_images: int = attrs.field(default=500, validator=attrs.validators.ge(0))
    robust_eval_steps: int = attrs.field(default=10, validator=attrs.validators.ge(0))
    seed: int = 0
    threads: int | None = attrs.field(default=TRAIN_THREADS, validator=attrs.validators.optional(_AT_LEAST_1))

    def fingerprint(self) -> str:
        blob = json.dumps(attrs.asdict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def standard_config(**overrides: Any) -> TrainConfig:
    """Default standard run: width 32, 64 px, 10k images x 5 epochs (~4-5 min on 2 cores)."""
    return attrs.evolve(TrainConfig(flavour="standard", width=32, epochs=5), **overrides)


def robust_config(**overrides: Any) -> TrainConfig:
    """Default robust run: L2 PGD (eps 0.5, 3 steps) fine-tuning of the standard model, 10k images x 2 epochs.

    Same width (32) as :func:`standard_config`; ~6 min on 2 idle cores.  Robust training from
    scratch (``warm_start=False``) at this budget (width 24, 4 epochs) only reached 31 % clean accuracy.
    """
    base = TrainConfig(flavour="robust", width=32, epochs=2, lr=0.05, eps=0.5, pgd_steps=3, warm_start=True)
    return attrs.evolve(base, **overrides)


#: The demo model flavours and their default configs.
CONFIG_FACTORIES = {"standard": standard_config, "robust": robust_config}


def study_configs(benchmark: Mapping[str, Any] | None, training: Mapping[str, Any] | None,
                  ) -> tuple[BenchmarkConfig, dict[str, TrainConfig]]:
    """The benchmark's config and every flavour's training config from a study's JSON overrides, or
    ``ValueError`` naming the setting (the study form checks them with this before a job runs)."""
    training = dict(training or {})
    unknown = sorted(set(training) - set(CONFIG_FACTORIES))
    if unknown:
        raise ValueError(f"training: unknown model flavour {unknown[0]!r}; the flavours are "
                         f"{', '.join(CONFIG_FACTORIES)}")
    for flavour, overrides in training.items():
        if not isinstance(overrides, Mapping):
            raise ValueError(f"training: the {flavour} model's overrides must be a JSON object, got {overrides!r}")
    bench = config_from_overrides(BenchmarkConfig, benchmark, "benchmark")
    configs = {f: config_from_overrides(TrainConfig, training.get(f), f"training ({f} model)", factory=factory)
               for f, factory in CONFIG_FACTORIES.items()}
    return bench, configs
