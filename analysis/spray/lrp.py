"""LRP relevance of the true class with zennit, composite chosen by architecture."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock as TorchvisionBasicBlock
from torchvision.models.resnet import Bottleneck
from zennit.canonizers import AttributeCanonizer, CompositeCanonizer, SequentialMergeBatchNorm
from zennit.composites import EpsilonPlusFlat
from zennit.layer import Sum
from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer

from analysis.models.demo_resnet import BasicBlock as DemoBasicBlock

#: Residual blocks whose forward is ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.
BASIC_BLOCKS = (TorchvisionBasicBlock, DemoBasicBlock)


class BasicBlockCanonizer(AttributeCanonizer):
    """zennit's BasicBlock canonizer, extended to the demo model's ``BasicBlock``.

    Both block classes have ``conv1, bn1, relu, conv2, bn2, downsample`` and the same
    forward, so zennit's forward (which routes the residual addition through a
    ``Sum`` module that LRP rules can hook) applies unchanged.
    """

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name, module):
        if isinstance(module, BASIC_BLOCKS):
            return {"forward": ResNetBasicBlockCanonizer.forward.__get__(module), "canonizer_sum": Sum()}
        return None


class ResNetCanonizer(CompositeCanonizer):
    """Batch-norm merging plus Sum modules in torchvision and demo residual blocks."""

    def __init__(self) -> None:
        super().__init__((SequentialMergeBatchNorm(), ResNetBottleneckCanonizer(), BasicBlockCanonizer()))


def is_resnet_like(model: nn.Module) -> bool:
    """True when ``model`` contains residual blocks the ResNet canonizer handles."""

    return any(isinstance(m, (*BASIC_BLOCKS, Bottleneck)) for m in model.modules())


def composite_for(model: nn.Module) -> EpsilonPlusFlat:
    """EpsilonPlusFlat with the canonizers that fit ``model``.

    Parameters
    ----------
    model : nn.Module
        The bare classifier (expects normalized input).

    Returns
    -------
    zennit.composites.EpsilonPlusFlat
        With :class:`ResNetCanonizer` for ResNet-like models, otherwise with
        ``SequentialMergeBatchNorm`` (VGG-style; a no-op without batch norm).
    """
    canonizer = ResNetCanonizer() if is_resnet_like(model) else SequentialMergeBatchNorm()
    return EpsilonPlusFlat(canonizers=[canonizer])


def _attribution_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy without in-place ReLUs (zennit hooks cannot follow in-place ops)."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return model


def relevance(handle, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """LRP relevance of each image's true class.

    Parameters
    ----------
    handle : analysis.models.handle.ModelHandle
        Model handle; images go through ``handle.normalize`` and the bare model is
        explained (relevance of the normalized input, per pixel and channel).
    images : Tensor, shape (N, 3, H, W)
        Images in [0, 1].
    labels : Tensor, shape (N,)
        True class per image.
    batch_size : int
        Images per backward pass.

    Returns
    -------
    Tensor, shape (N, 3, H, W), on the CPU
        Relevance; the initial relevance is the true-class logit, and the map's
        sum approximates it (exactly up to what biases and stabilizers absorb).
    """
    if images.ndim != 4 or len(images) != len(labels):
        raise ValueError("images must be (N, C, H, W) with one label per image")
    model = _attribution_copy(handle.model)
    composite = composite_for(model)
    labels = torch.as_tensor(labels, dtype=torch.long)
    out = []
    with composite.context(model) as modified:
        for start in range(0, len(images), batch_size):
            x = handle.normalize(images[start:start + batch_size]).detach().requires_grad_(True)
            y = labels[start:start + batch_size].to(x.device)
            logits = modified(x)
            # Initial relevance: the true-class logit (standard LRP), zero elsewhere.
            grad_out = torch.zeros_like(logits)
            rows = torch.arange(len(y), device=x.device)
            grad_out[rows, y] = logits.detach()[rows, y]
            (rel,) = torch.autograd.grad(logits, x, grad_outputs=grad_out)
            out.append(rel.detach().cpu())
    return torch.cat(out) if out else images.new_zeros(images.shape).cpu()
