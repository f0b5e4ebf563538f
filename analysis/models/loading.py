"""Loading a classifier from an architecture name and a checkpoint into a handle."""
from __future__ import annotations

import os
from typing import BinaryIO, Mapping, Sequence

from torch import nn

from .architectures import build_architecture, infer_architecture_kwargs, last_linear_name
from .checkpoints import CheckpointError, ParsedCheckpoint, check_state_dict, read_checkpoint
from .demo_resnet import DEMO_ARCH
from .handle import IMAGENET_MEAN, IMAGENET_STD, ModelHandle

#: Input side used when neither the caller nor the checkpoint says otherwise.
DEFAULT_INPUT_SIZES = {DEMO_ARCH: 64}


def build_model_for_state_dict(arch: str, state_dict: Mapping, *, num_classes: int | None = None,
                               arch_kwargs: Mapping | None = None) -> nn.Module:
    """Build ``arch`` with as many classes as the checkpoint's classifier has.

    Parameters
    ----------
    arch : str
        Architecture name.
    state_dict : mapping
        Unwrapped weights.
    num_classes : int, optional
        Force the number of classes; otherwise read from the classifier weight.
    arch_kwargs : mapping, optional
        Extra factory arguments.

    Returns
    -------
    nn.Module
        Untrained model (weights not yet loaded).
    """
    kwargs = {**infer_architecture_kwargs(arch, state_dict), **dict(arch_kwargs or {})}
    model = build_architecture(arch, num_classes=num_classes, **kwargs)
    if num_classes is None:
        linear_name = last_linear_name(model)
        weight = state_dict.get(f"{linear_name}.weight")
        out_features = model.get_submodule(linear_name).out_features
        if weight is not None and weight.ndim == 2 and weight.shape[0] != out_features:
            model = build_architecture(arch, num_classes=int(weight.shape[0]), **kwargs)
    return model


def load_model(arch: str | None, checkpoint: str | os.PathLike | BinaryIO | bytes | Mapping | ParsedCheckpoint,
               *, num_classes: int | None = None, arch_kwargs: Mapping | None = None,
               mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
               class_names: Sequence[str] | None = None, input_size: int | None = None,
               trusted: bool = False, device: str = "cpu") -> ModelHandle:
    """Load a classifier checkpoint into a :class:`ModelHandle`.

    Parameters
    ----------
    arch : str or None
        Architecture name (torchvision or registered); None to use the name
        recorded in the checkpoint.
    checkpoint : path, file, bytes, mapping or ParsedCheckpoint
        Any layout understood by :func:`read_checkpoint`.
    num_classes : int, optional
        Number of outputs; inferred from the classifier weight by default.
    arch_kwargs : mapping, optional
        Extra factory arguments (override recorded/inferred ones).
    mean, std : sequence of float, optional
        Input normalization; default: recorded in the checkpoint (robustness
        normalizer or project checkpoint), else ImageNet's.
    class_names : sequence of str, optional
        Class names; default: recorded, else indices.
    input_size : int, optional
        Square input side; default: recorded, else 64 for the demo model, 224 otherwise.
    trusted : bool
        Allow full unpickling (see :func:`read_checkpoint`).
    device : str
        Where to put the model.

    Returns
    -------
    ModelHandle

    Raises
    ------
    CheckpointMismatchError
        When the checkpoint's keys/shapes do not fit ``arch``.
    """
    parsed = checkpoint if isinstance(checkpoint, ParsedCheckpoint) else read_checkpoint(checkpoint, trusted=trusted)
    arch = arch or parsed.arch
    if not arch:
        raise CheckpointError("the checkpoint does not record its architecture; pass arch=")
    kwargs = {**parsed.arch_kwargs, **dict(arch_kwargs or {})} if arch == parsed.arch or parsed.arch is None \
        else dict(arch_kwargs or {})
    model = build_model_for_state_dict(arch, parsed.state_dict, num_classes=num_classes, arch_kwargs=kwargs)
    check_state_dict(model, parsed.state_dict, arch)
    model.load_state_dict(parsed.state_dict, strict=False)
    model.to(device).eval()
    return ModelHandle(
        model,
        mean=mean or parsed.mean or IMAGENET_MEAN,
        std=std or parsed.std or IMAGENET_STD,
        arch=arch,
        class_names=class_names or parsed.class_names,
        input_size=input_size or parsed.input_size or DEFAULT_INPUT_SIZES.get(arch, 224),
    )
