"""Inputs of the streaming tests: the tiny benchmark as a data source, a random demo ResNet as a checkpoint."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.datasets.benchmark import BenchmarkConfig, load_or_generate_benchmark
from analysis.models import DEMO_ARCH, SmallResNet, load_model, save_checkpoint
from analysis.streaming import DataSource, ModelSource
from tests.conftest import TINY_BENCHMARK

NUM_CLASSES = len(TINY_BENCHMARK["classes"])


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, fashion_mnist_available):
    """(DataSource of the tiny benchmark's train split, its images (N, 3, 32, 32), its labels)."""
    directory = tmp_path_factory.mktemp("stream-bench")
    bench, _ = load_or_generate_benchmark(directory, BenchmarkConfig(**TINY_BENCHMARK), show_progress=False)
    source = DataSource("benchmark", {"directory": str(directory), "config": TINY_BENCHMARK, "split": "train"})
    images, labels = bench.split("train").tensors()
    return source, images, labels


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_data):
    """(ModelSource of a random width-8 demo ResNet checkpoint, its handle); it predicts every class."""
    torch.manual_seed(3)
    model = SmallResNet(num_classes=NUM_CLASSES, width=8).eval()
    with torch.no_grad():  # centre the random logits so that every class gets predicted
        model.fc.weight.mul_(4.0)
        model.fc.bias.sub_(model((tiny_data[1] - 0.5) / 0.25).mean(0))
    path = tmp_path_factory.mktemp("stream-model") / "tiny.pt"
    save_checkpoint(path, model, arch=DEMO_ARCH, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                    class_names=[str(c) for c in range(NUM_CLASSES)], arch_kwargs={"width": 8}, input_size=32)
    return ModelSource(str(path)), load_model(None, path)


def assert_same_topk(a, b) -> None:
    """Two GroupedTopK states hold the same groups, values and indices."""
    assert sorted(a.groups) == sorted(b.groups)
    for group in a.groups:
        np.testing.assert_array_equal(a.groups[group][1].numpy(), b.groups[group][1].numpy())
        np.testing.assert_array_equal(a.groups[group][0].numpy(), b.groups[group][0].numpy())
