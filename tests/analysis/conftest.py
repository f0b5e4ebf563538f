"""Fixtures for the Django-free analysis tests (no database needed)."""
from __future__ import annotations

import pytest
import torch

from analysis.datasets import BenchmarkConfig, FashionMNISTNotFoundError, generate_benchmark, load_fashion_mnist

#: A small benchmark: 5 classes incl. the three biased ones, 40 train / 20 test images per class.
SMALL_BENCHMARK = BenchmarkConfig(seed=7, classes=(0, 2, 4, 6, 8), train_per_class=40, test_per_class=20)


@pytest.fixture(scope="session")
def fashion_mnist_available() -> None:
    """Fail (with the installation hint) when Debian's dataset-fashion-mnist is missing: `make test` installs it."""
    try:
        load_fashion_mnist("test")
    except FashionMNISTNotFoundError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def small_config() -> BenchmarkConfig:
    return SMALL_BENCHMARK


@pytest.fixture(scope="session")
def small_benchmark(fashion_mnist_available):
    return generate_benchmark(SMALL_BENCHMARK, show_progress=False)


@pytest.fixture(autouse=True)
def _seeded_torch():
    torch.manual_seed(0)
    yield
