"""The uniform ModelHandle on ResNet, VGG, DenseNet and the demo ResNet."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from analysis.models import (
    DEMO_ARCH,
    FeatureMapsUnavailableError,
    ModelHandle,
    build_architecture,
    last_map_size,
)

SIZE = 64


@pytest.fixture(scope="module", params=["resnet18", "vgg11", "densenet121", DEMO_ARCH])
def handle(request):
    torch.manual_seed(0)
    model = build_architecture(request.param, num_classes=6)
    return ModelHandle(model, arch=request.param, input_size=SIZE)


def test_shapes_and_consistency(handle):
    x = torch.rand(3, 3, SIZE, SIZE)
    with torch.no_grad():
        out = handle.features_and_maps(x)
        assert out.logits.shape == (3, 6)
        assert out.features.shape == (3, handle.feature_dim)
        maps = out.feature_maps
        assert maps.ndim == 4 and maps.shape[0] == 3 and maps.shape[2] * maps.shape[3] > 1
        # r(x) is the input of the last linear layer: W r(x) + b reproduces the logits
        weight, bias = handle.last_linear
        assert weight.shape == (6, handle.feature_dim)
        assert torch.allclose(out.features @ weight.T + bias, out.logits, atol=1e-4)
        # the separate calls agree with the single pass and with the bare model
        assert torch.allclose(handle.features(x), out.features)
        assert torch.allclose(handle.feature_maps(x), maps)
        assert torch.allclose(handle.logits(x), out.logits, atol=1e-5)


def test_maps_are_the_block_before_global_pooling(handle):
    """For ResNet/DenseNet/demo, r(x) is the spatial mean of the last maps."""
    if handle.arch == "vgg11":
        assert handle.nodes.feature_maps.startswith("features.")
        assert handle.feature_maps(torch.rand(1, 3, SIZE, SIZE)).shape[1] == 512
        return
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        out = handle.features_and_maps(x)
    assert out.feature_maps.shape[1] == handle.feature_dim
    assert torch.allclose(out.feature_maps.mean(dim=(2, 3)), out.features, atol=1e-5)


def test_normalization_lives_in_the_handle(handle):
    x = torch.rand(2, 3, SIZE, SIZE)
    mean = torch.tensor(handle.mean).view(1, 3, 1, 1)
    std = torch.tensor(handle.std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(handle.logits(x), handle.model((x - mean) / std), atol=1e-5)
        assert not torch.allclose(handle.logits(x), handle.model(x), atol=1e-3)


def test_features_have_input_gradients(handle):
    x = torch.rand(1, 3, SIZE, SIZE, requires_grad=True)
    handle.features(x)[:, : min(4, handle.feature_dim)].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_demo_model_keeps_an_8x8_map_at_64px():
    assert last_map_size(64) == 8 and last_map_size(48) == 6
    handle = ModelHandle(build_architecture(DEMO_ARCH, num_classes=10, width=8), input_size=64)
    assert handle.feature_maps(torch.rand(1, 3, 64, 64)).shape == (1, 64, 8, 8)
    assert handle.nodes.linear == "fc" and handle.nodes.feature_maps.startswith("layer4")


def test_models_without_conv_maps_say_so():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 4))
    handle = ModelHandle(mlp, input_size=8)
    assert handle.features(torch.rand(2, 3, 8, 8)).shape == (2, 16)
    with pytest.raises(FeatureMapsUnavailableError):
        handle.feature_maps(torch.rand(2, 3, 8, 8))


def test_bad_input_and_class_names():
    model = build_architecture(DEMO_ARCH, num_classes=3, width=8)
    with pytest.raises(ValueError, match="3 outputs"):
        ModelHandle(model, class_names=["a", "b"], input_size=64)
    handle = ModelHandle(model, input_size=64)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        handle.logits(torch.rand(3, 64, 64))
