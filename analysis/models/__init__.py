"""Classifier loading and the uniform :class:`ModelHandle`.

Typical use::

    from analysis.models import load_model
    handle = load_model("resnet50", "robust_resnet50.pth")   # robustness-library checkpoint
    out = handle.features_and_maps(images)                   # images in [0, 1]
    W, b = handle.last_linear
"""
from .architectures import (
    UnknownArchitectureError,
    build_architecture,
    classification_architectures,
    last_linear_name,
    register_architecture,
)
from .checkpoints import (
    CheckpointError,
    CheckpointMismatchError,
    ParsedCheckpoint,
    check_state_dict,
    parse_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from .demo_resnet import DEMO_ARCH, SmallResNet, last_map_size
from .handle import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FeatureMapsUnavailableError,
    FeatureNodes,
    FeatureOutput,
    ModelHandle,
    NormalizedClassifier,
    find_feature_nodes,
)
from .loading import build_model_for_state_dict, load_model

__all__ = [
    "DEMO_ARCH", "IMAGENET_MEAN", "IMAGENET_STD",
    "CheckpointError", "CheckpointMismatchError", "FeatureMapsUnavailableError",
    "FeatureNodes", "FeatureOutput", "ModelHandle", "NormalizedClassifier", "ParsedCheckpoint",
    "SmallResNet", "UnknownArchitectureError",
    "build_architecture", "build_model_for_state_dict", "check_state_dict",
    "classification_architectures", "find_feature_nodes", "last_linear_name", "last_map_size",
    "load_model", "parse_checkpoint", "read_checkpoint", "register_architecture", "save_checkpoint",
]
