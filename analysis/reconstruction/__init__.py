from importlib import import_module

"""Recovered-sample analysis: reconstructing training images from a homogeneous MLP
(Revealing Model Biases §4.2; the reconstruction of Haim et al. 2022).

Plain Python (numpy, torch, scikit-image); no Django.  ``pipeline.run_reconstruction`` is the
entry point for a Celery job; ``bias`` holds the seed paper's trigger levels and contrast.
"""
#: Public name -> submodule. Loaded on first use (PEP 562), so importing one submodule (the platform
#: reads ``bias`` and ``review`` at start-up) does not import torch through the others. The function
#: ``reconstruct`` is imported from its submodule, ``analysis.reconstruction.reconstruct`` (the package
#: attribute of that name is the submodule once it is loaded).
_WHERE = {
    "BIASES": "bias", "BinaryTask": "data", "DEFAULT_CONFIG": "pipeline", "DEFAULT_PAIR": "bias",
    "HomogeneousMLP": "model",
    "PAPER_CONFIG": "pipeline", "POSITIONAL": "bias", "Planted": "bias", "ReconstructionResult": "reconstruct",
    "Score": "scoring", "TrainResult": "train", "VARIANTS": "bias", "accuracy": "train", "apply_intensity": "bias",
    "benchmark_task": "data", "binary_task": "data", "build_task": "pipeline", "build_test": "pipeline",
    "clean_split": "data", "fashion_mnist_task": "data", "load": "pipeline", "make_config": "pipeline",
    "modified_relu": "model", "nearest_reconstruction": "scoring", "plant": "bias", "plant_other_side": "bias",
    "run_reconstruction": "pipeline", "save": "pipeline", "score": "scoring", "shown_trigger": "scoring",
    "ssim_pairs": "scoring", "train_full_batch": "train", "trigger_side": "bias", "trigger_standout": "scoring",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    return getattr(import_module(f".{_WHERE[name]}", __name__), name)


__all__ = [
    "BIASES", "DEFAULT_CONFIG", "DEFAULT_PAIR", "PAPER_CONFIG", "POSITIONAL", "VARIANTS",
    "BinaryTask", "HomogeneousMLP", "Planted", "ReconstructionResult", "Score", "TrainResult",
    "accuracy", "apply_intensity", "benchmark_task", "binary_task", "build_task", "build_test", "clean_split",
    "fashion_mnist_task", "load", "make_config", "modified_relu", "nearest_reconstruction", "plant",
    "plant_other_side", "run_reconstruction", "save", "score", "shown_trigger", "ssim_pairs", "train_full_batch",
    "trigger_side", "trigger_standout",
]
