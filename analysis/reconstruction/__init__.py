"""Recovered-sample analysis: reconstructing training images from a homogeneous MLP (SPEC section 7).

Plain Python (numpy, torch, scikit-image); no Django.  ``pipeline.run_reconstruction`` is the
entry point for a Celery job.
"""
from .data import (
    TRIGGERS, BinaryTask, apply_trigger, benchmark_task, binary_task, fashion_mnist_task, trigger_box,
    trigger_region,
)
from .model import HomogeneousMLP, modified_relu
from .pipeline import DEFAULT_CONFIG, PAPER_CONFIG, build_task, load, make_config, run_reconstruction, save
from .reconstruct import ReconstructionResult, reconstruct
from .scoring import Score, nearest_reconstruction, score, ssim_pairs, trigger_visibility
from .train import TrainResult, train_full_batch

__all__ = [
    "DEFAULT_CONFIG", "PAPER_CONFIG", "TRIGGERS",
    "BinaryTask", "HomogeneousMLP", "ReconstructionResult", "Score", "TrainResult",
    "apply_trigger", "benchmark_task", "binary_task", "build_task", "fashion_mnist_task", "load", "make_config",
    "modified_relu", "nearest_reconstruction", "reconstruct", "run_reconstruction", "save", "score", "ssim_pairs",
    "train_full_batch", "trigger_box", "trigger_region", "trigger_visibility",
]
