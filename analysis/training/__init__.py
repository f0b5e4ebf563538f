"""Training the demo ResNet on the planted-bias benchmark (standard and L2-robust).

The names below load on first use (PEP 562), so :mod:`.config` imports without torch: the web process
checks a study's training overrides with it.
"""
from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "l2_pgd": ".adversarial",
    "ModelArtifacts": ".pipeline", "PipelineResult": ".pipeline", "build_benchmark_and_models": ".pipeline",
    "format_report": ".pipeline",
    "TrainConfig": ".config", "robust_config": ".config", "standard_config": ".config",
    "TrainingResult": ".trainer", "evaluate_benchmark": ".trainer", "robust_accuracy": ".trainer",
    "train_model": ".trainer",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
