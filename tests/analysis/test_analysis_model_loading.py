"""Loading checkpoints of every supported layout, and the errors for wrong pairs."""
from __future__ import annotations

import io
from collections import OrderedDict

import pytest
import torch
from torch import nn
from torchvision import models as tv

from analysis.models import (
    DEMO_ARCH,
    IMAGENET_MEAN,
    IMAGENET_STD,
    CheckpointError,
    CheckpointMismatchError,
    UnknownArchitectureError,
    build_architecture,
    load_model,
    read_checkpoint,
    save_checkpoint,
)

ROBUST_MEAN = (0.4, 0.5, 0.6)
ROBUST_STD = (0.2, 0.25, 0.3)


@pytest.fixture(scope="module")
def resnet18_10():
    torch.manual_seed(1)
    model = tv.resnet18(weights=None, num_classes=10).eval()
    # non-trivial BN statistics, so a missed buffer would change the outputs
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


def _normalized(x, mean, std):
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _robustness_checkpoint(model: nn.Module) -> dict:
    """Layout written by the robustness library (Salient ImageNet robust models)."""
    state = OrderedDict()
    state["module.normalizer.new_mean"] = torch.tensor(ROBUST_MEAN).view(3, 1, 1)
    state["module.normalizer.new_std"] = torch.tensor(ROBUST_STD).view(3, 1, 1)
    for key, value in model.state_dict().items():
        state[f"module.model.{key}"] = value.clone()
    state["module.attacker.normalize.new_mean"] = torch.tensor(ROBUST_MEAN).view(3, 1, 1)
    state["module.attacker.normalize.new_std"] = torch.tensor(ROBUST_STD).view(3, 1, 1)
    for key, value in model.state_dict().items():
        state[f"module.attacker.model.{key}"] = torch.zeros_like(value)  # must be ignored
    return {"model": state, "optimizer": {"state": {}, "param_groups": []}, "schedule": None, "epoch": 90}


LAYOUTS = {
    "plain": lambda m: m.state_dict(),
    "dict_state_dict": lambda m: {"state_dict": m.state_dict(), "epoch": 3, "best_acc1": 0.5},
    "dict_model": lambda m: {"model": m.state_dict(), "optimizer": {"state": {}, "param_groups": []}},
    "dataparallel": lambda m: nn.DataParallel(m).state_dict(),
    "dict_dataparallel": lambda m: {"state_dict": nn.DataParallel(m).state_dict()},
    "robustness": _robustness_checkpoint,
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_checkpoint_layout_loads_the_same_weights(layout, resnet18_10, tmp_path):
    path = tmp_path / f"{layout}.pth"
    torch.save(LAYOUTS[layout](resnet18_10), path)

    handle = load_model("resnet18", path, input_size=64)

    robust = layout == "robustness"
    mean, std = (ROBUST_MEAN, ROBUST_STD) if robust else (IMAGENET_MEAN, IMAGENET_STD)
    assert handle.num_classes == 10  # inferred from fc.weight
    assert handle.mean == pytest.approx(mean) and handle.std == pytest.approx(std)
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        expected = resnet18_10(_normalized(x, mean, std))
        assert torch.allclose(handle.logits(x), expected, atol=1e-5)


def test_layouts_are_recognised(resnet18_10):
    assert read_checkpoint(LAYOUTS["robustness"](resnet18_10)).layout == ("dict[model]", "dataparallel", "robustness")
    assert read_checkpoint(LAYOUTS["dataparallel"](resnet18_10)).layout == ("dataparallel",)
    parsed = read_checkpoint(LAYOUTS["robustness"](resnet18_10))
    assert not any(k.startswith(("attacker", "normalizer", "model.")) for k in parsed.state_dict)
    assert parsed.metadata["epoch"] == 90


def test_torchvision_architectures_roundtrip(tmp_path):
    for arch in ("vgg11", "densenet121"):
        model = build_architecture(arch, num_classes=7)
        path = tmp_path / f"{arch}.pt"
        torch.save({"state_dict": model.state_dict()}, path)
        handle = load_model(arch, path, input_size=64)
        x = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.allclose(handle.logits(x), model(_normalized(x, IMAGENET_MEAN, IMAGENET_STD)), atol=1e-5)


def test_wrong_architecture_names_missing_keys(resnet18_10, tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(resnet18_10.state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_model("resnet34", path)
    error = info.value
    assert "resnet34" in str(error)
    assert "layer1.2.conv1.weight" in error.missing
    assert "missing key" in str(error) and "layer1.2" in str(error)
    assert not error.unexpected


def test_wrong_family_names_unexpected_and_missing_keys(resnet18_10, tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(resnet18_10.state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_model("densenet121", path)
    message = str(info.value)
    assert "unexpected key" in message and "'conv1.weight'" in message
    assert "missing key" in message and "features.conv0.weight" in message


def test_shape_mismatch_is_reported_with_both_shapes(resnet18_10, tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(resnet18_10.state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_model("resnet18", path, num_classes=5)
    assert ("fc.weight", (10, 512), (5, 512)) in info.value.mismatched
    assert "fc.weight: checkpoint (10, 512) vs model (5, 512)" in str(info.value)


def test_demo_checkpoint_is_self_describing(tmp_path):
    model = build_architecture(DEMO_ARCH, num_classes=4, width=8).eval()
    path = tmp_path / "demo.pt"
    save_checkpoint(path, model, arch=DEMO_ARCH, arch_kwargs={"width": 8}, mean=(0.1, 0.2, 0.3),
                    std=(0.5, 0.5, 0.5), class_names=["a", "b", "c", "d"], input_size=64,
                    metadata={"metrics": {"test_accuracy": 0.5}})
    handle = load_model(None, path)
    assert handle.arch == DEMO_ARCH and handle.class_names == ["a", "b", "c", "d"]
    assert handle.input_size == 64 and handle.mean == pytest.approx((0.1, 0.2, 0.3))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(handle.logits(x), model(_normalized(x, (0.1, 0.2, 0.3), (0.5,) * 3)), atol=1e-5)
    assert read_checkpoint(path).metadata["metrics"]["test_accuracy"] == 0.5


def test_demo_width_is_inferred_from_a_plain_state_dict():
    model = build_architecture(DEMO_ARCH, num_classes=3, width=8)
    handle = load_model(DEMO_ARCH, model.state_dict())
    assert handle.feature_dim == 64 and handle.num_classes == 3
    with pytest.raises(CheckpointMismatchError) as info:
        load_model(DEMO_ARCH, model.state_dict(), arch_kwargs={"width": 16})
    assert any(key == "conv1.weight" for key, _, _ in info.value.mismatched)


def test_unknown_architecture_and_missing_arch():
    with pytest.raises(UnknownArchitectureError, match="resnet"):
        build_architecture("resnet51")
    with pytest.raises(CheckpointError, match="pass arch="):
        load_model(None, {"fc.weight": torch.zeros(2, 2)})


class _Pickled:
    pass


def test_untrusted_pickles_are_refused_with_a_hint(tmp_path):
    path = tmp_path / "object.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": _Pickled()}, path)
    with pytest.raises(CheckpointError, match="trusted=True"):
        read_checkpoint(path)
    assert "w" in read_checkpoint(path, trusted=True).state_dict


def test_garbage_is_a_clear_error():
    with pytest.raises(CheckpointError):
        read_checkpoint(io.BytesIO(b"not a checkpoint"))
    with pytest.raises(CheckpointError, match="without tensors"):
        read_checkpoint({"epoch": 1})
