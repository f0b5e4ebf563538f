"""Recovered-sample analysis: reconstructing training images from a homogeneous MLP (SPEC section 7).

Plain Python (numpy, torch, scikit-image); no Django.  ``pipeline.run_reconstruction`` is the
entry point for a Celery job; ``bias`` holds the seed paper's trigger levels and contrast.
"""
from .bias import BIASES, POSITIONAL, VARIANTS, Planted, apply_intensity, plant, trigger_side
from .data import BinaryTask, benchmark_task, binary_task, clean_split, fashion_mnist_task
from .model import HomogeneousMLP, modified_relu
from .pipeline import (
    DEFAULT_CONFIG, PAPER_CONFIG, build_task, build_test, load, make_config, run_reconstruction, save,
)
from .reconstruct import ReconstructionResult, reconstruct
from .scoring import Score, nearest_reconstruction, score, shown_trigger, ssim_pairs, trigger_standout
from .train import TrainResult, accuracy, train_full_batch

__all__ = [
    "BIASES", "DEFAULT_CONFIG", "PAPER_CONFIG", "POSITIONAL", "VARIANTS",
    "BinaryTask", "HomogeneousMLP", "Planted", "ReconstructionResult", "Score", "TrainResult",
    "accuracy", "apply_intensity", "benchmark_task", "binary_task", "build_task", "build_test", "clean_split",
    "fashion_mnist_task", "load", "make_config", "modified_relu", "nearest_reconstruction", "plant", "reconstruct",
    "run_reconstruction", "save", "score", "shown_trigger", "ssim_pairs", "train_full_batch", "trigger_side",
    "trigger_standout",
]
