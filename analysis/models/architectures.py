"""Building classification architectures by name.

Names are resolved first against the project's own registry (e.g. the demo
ResNet) and then against torchvision's model registry
(:func:`torchvision.models.list_models`).  Models are always built with random
weights: nothing is downloaded.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn
from torchvision import models as tv_models

from .demo_resnet import DEMO_ARCH, salient_demo_resnet

ArchitectureFactory = Callable[..., nn.Module]

KwargsInference = Callable[[Mapping[str, "torch.Tensor"]], dict]

_CUSTOM_ARCHITECTURES: dict[str, ArchitectureFactory] = {}
_KWARGS_INFERENCE: dict[str, KwargsInference] = {}


class UnknownArchitectureError(ValueError):
    """Raised when an architecture name is neither registered nor in torchvision."""


def register_architecture(
    name: str,
    factory: ArchitectureFactory,
    *,
    infer_kwargs: KwargsInference | None = None,
    replace: bool = False,
) -> None:
    """Register a model factory under ``name``.

    Parameters
    ----------
    name : str
        Architecture name, used in checkpoints and study forms.
    factory : callable
        ``factory(num_classes=..., **kwargs) -> nn.Module``.
    infer_kwargs : callable, optional
        ``infer_kwargs(state_dict) -> dict`` guessing factory arguments (e.g. the
        width) from a plain state dict whose checkpoint does not record them.
    replace : bool
        Allow overwriting an existing registration.
    """
    if not replace and name in _CUSTOM_ARCHITECTURES:
        raise ValueError(f"architecture {name!r} is already registered")
    _CUSTOM_ARCHITECTURES[name] = factory
    if infer_kwargs is not None:
        _KWARGS_INFERENCE[name] = infer_kwargs
    else:
        _KWARGS_INFERENCE.pop(name, None)


def infer_architecture_kwargs(name: str, state_dict: Mapping[str, "torch.Tensor"]) -> dict:
    """Factory arguments guessed from ``state_dict`` (empty for torchvision models)."""
    inference = _KWARGS_INFERENCE.get(name)
    return dict(inference(state_dict)) if inference is not None else {}


def classification_architectures() -> list[str]:
    """Names accepted by :func:`build_architecture` (custom ones first)."""
    torchvision_names = tv_models.list_models(module=tv_models)
    return sorted(_CUSTOM_ARCHITECTURES) + sorted(torchvision_names)


def build_architecture(name: str, num_classes: int | None = None, **kwargs) -> nn.Module:
    """Build an untrained classifier.

    Parameters
    ----------
    name : str
        A registered custom name or a torchvision classification model name
        (``"resnet50"``, ``"vgg16_bn"``, ``"densenet121"`` ...).
    num_classes : int, optional
        Output classes; the architecture's default (1000 for torchvision) when None.
    **kwargs
        Passed to the factory (e.g. ``width`` for the demo ResNet).

    Returns
    -------
    torch.nn.Module
        The model in eval mode.

    Raises
    ------
    UnknownArchitectureError
        If ``name`` is unknown.
    """
    if num_classes is not None:
        kwargs["num_classes"] = int(num_classes)
    if name in _CUSTOM_ARCHITECTURES:
        model = _CUSTOM_ARCHITECTURES[name](**kwargs)
    else:
        known = set(tv_models.list_models(module=tv_models))
        if name not in known:
            close = sorted(n for n in known if name.lower().rstrip("0123456789_") in n)[:8]
            hint = f" Similar names: {', '.join(close)}." if close else ""
            raise UnknownArchitectureError(
                f"unknown architecture {name!r}: not registered and not a torchvision "
                f"classification model.{hint}"
            )
        model = tv_models.get_model(name, weights=None, **kwargs)
    return model.eval()


def last_linear_name(model: nn.Module) -> str:
    """Qualified name of the last :class:`torch.nn.Linear` module (the classifier)."""
    name = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            name = module_name
    if name is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer")
    return name


def _infer_demo_kwargs(state_dict: Mapping[str, "torch.Tensor"]) -> dict:
    kwargs = {}
    if "conv1.weight" in state_dict:
        kwargs["width"] = int(state_dict["conv1.weight"].shape[0])
    blocks = {key.split(".")[1] for key in state_dict if key.startswith("layer1.")}
    if blocks:
        kwargs["blocks_per_stage"] = len(blocks)
    return kwargs


register_architecture(DEMO_ARCH, salient_demo_resnet, infer_kwargs=_infer_demo_kwargs)

__all__ = [
    "UnknownArchitectureError",
    "build_architecture",
    "classification_architectures",
    "infer_architecture_kwargs",
    "last_linear_name",
    "register_architecture",
]
