"""Training the demo ResNet on the planted-bias benchmark (standard and L2-robust)."""
from .adversarial import l2_pgd
from .pipeline import ModelArtifacts, PipelineResult, build_benchmark_and_models, format_report
from .trainer import (
    TrainConfig,
    TrainingResult,
    evaluate_benchmark,
    robust_accuracy,
    robust_config,
    standard_config,
    train_model,
)

__all__ = [
    "ModelArtifacts", "PipelineResult", "TrainConfig", "TrainingResult",
    "build_benchmark_and_models", "evaluate_benchmark", "format_report", "l2_pgd",
    "robust_accuracy", "robust_config", "standard_config", "train_model",
]
