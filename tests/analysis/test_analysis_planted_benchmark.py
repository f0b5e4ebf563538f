"""The built-in planted-bias benchmark: determinism, masks, correlations, caching."""
from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch

from analysis.datasets import (
    BIAS_KINDS,
    NO_BIAS,
    BenchmarkConfig,
    FashionMNISTNotFoundError,
    PlantedBiasBenchmark,
    dataset_registry,
    generate_benchmark,
    load_fashion_mnist,
    load_or_generate_benchmark,
)
from analysis.datasets import benchmark as benchmark_module

WATERMARK, OBJECT, BACKGROUND = (BIAS_KINDS.index(k) for k in ("watermark", "object", "background"))


def test_missing_fashion_mnist_names_the_debian_package(tmp_path):
    with pytest.raises(FashionMNISTNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist("train", tmp_path)


def test_fashion_mnist_reader(fashion_mnist_available):
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10


def test_generation_is_deterministic(small_benchmark, small_config):
    again = generate_benchmark(small_config, show_progress=False)
    other_seed = generate_benchmark(attrs.evolve(small_config, seed=8), show_progress=False)
    for name in ("train", "test", "flipped"):
        a, b = small_benchmark.split(name), again.split(name)
        for field in ("images", "labels", "object_masks", "bias_masks", "bias_kinds", "source_indices"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (name, field)
    assert not np.array_equal(small_benchmark.split("train").images, other_seed.split("train").images)


def test_shapes_and_labels(small_benchmark, small_config):
    config = small_config
    assert small_benchmark.class_names == ["T-shirt/top", "Pullover", "Coat", "Shirt", "Bag"]
    for name, per_class in (("train", config.train_per_class), ("test", config.test_per_class),
                            ("flipped", config.test_per_class)):
        split = small_benchmark.split(name)
        n = len(config.classes) * per_class
        assert split.images.shape == (n, 64, 64, 3) and split.images.dtype == np.uint8
        assert split.object_masks.shape == split.bias_masks.shape == (n, 64, 64)
        assert np.bincount(split.labels).tolist() == [per_class] * len(config.classes)
    # test and flipped use different Fashion-MNIST test images
    assert not set(small_benchmark.split("test").source_indices) & set(small_benchmark.split("flipped").source_indices)


def test_masks_match_the_planted_cues(small_benchmark):
    for split in small_benchmark.splits.values():
        has_cue = split.bias_kinds != NO_BIAS
        assert not split.bias_masks[~has_cue].any()
        assert split.bias_masks[has_cue].reshape(has_cue.sum(), -1).any(axis=1).all()
        assert split.object_masks.reshape(len(split), -1).sum(axis=1).min() > 20
        assert not (split.object_masks & split.bias_masks).any()

        bg = split.bias_kinds == BACKGROUND
        assert np.array_equal(split.bias_masks[bg], ~split.object_masks[bg])
        assert (split.backgrounds[bg] == 0).all() and (split.backgrounds[~bg] != 0).all()

        marks = split.bias_kinds == WATERMARK
        if marks.any():
            rows, cols = np.nonzero(split.bias_masks[marks].any(axis=0))
            assert rows.min() >= 64 - 20 and cols.min() >= 64 - 20  # bottom-right corner only
            pixels = split.images[marks][split.bias_masks[marks]].astype(int)
            assert (pixels.min(axis=1) > 200).mean() > 0.3 and (pixels.max(axis=1) < 60).mean() > 0.2

        balls = split.bias_kinds == OBJECT
        if balls.any():
            pixels = split.images[balls][split.bias_masks[balls]].astype(int)
            red = (pixels[:, 0] > pixels[:, 1] + 60) & (pixels[:, 0] > pixels[:, 2] + 60)
            assert red.mean() > 0.9
            # beside the garment, not on it
            assert not (split.object_masks[balls] & split.bias_masks[balls]).any()


def test_watermark_side_follows_watermark_scale(small_benchmark, small_config):
    """SpRAy's variant draws a larger mark (analysis.spray.benchmark_variant); the default stays 0.2 of the side."""

    def mark_side(bench):
        split = bench.split("train")
        masks = split.bias_masks[split.bias_kinds == WATERMARK]
        rows = np.flatnonzero(masks.any(axis=(0, 2)))
        return int(np.median([np.ptp(np.flatnonzero(m.any(axis=1))) + 1 for m in masks])), rows

    side, _ = mark_side(small_benchmark)
    larger, rows = mark_side(generate_benchmark(attrs.evolve(small_config, watermark_scale=0.3), show_progress=False))
    size = small_config.image_size
    assert side == pytest.approx(0.2 * size, abs=1) and larger == pytest.approx(0.3 * size, abs=1)
    assert rows.min() >= size - round(0.3 * size) - 3  # still in the bottom-right corner


def _cue_rate(split, label, kind):
    rows = split.labels == label
    return float((split.bias_kinds[rows] == kind).mean())


def test_correlations_in_train_test_and_flipped(small_benchmark):
    biased = small_benchmark.biased_labels()
    assert biased == {"background": 1, "watermark": 2, "object": 3}
    for name in ("train", "test"):
        split = small_benchmark.split(name)
        for kind, label in biased.items():
            assert 0.75 <= _cue_rate(split, label, BIAS_KINDS.index(kind)) <= 1.0
        unbiased = ~np.isin(split.labels, list(biased.values()))
        assert (split.bias_kinds[unbiased] == NO_BIAS).all()  # other_rate = 0
    flipped = small_benchmark.split("flipped")
    for kind, label in biased.items():
        k = BIAS_KINDS.index(kind)
        assert _cue_rate(flipped, label, k) == 0.0
        assert (flipped.bias_kinds[flipped.labels != label] == k).mean() > 0.15


def test_torch_views(small_benchmark):
    split = small_benchmark.split("test")
    images, labels = split.tensors()
    assert images.shape == (len(split), 3, 64, 64) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and labels.dtype == torch.int64
    image, label, object_mask, bias_mask = split.torch_dataset(with_masks=True)[5]
    assert torch.equal(image, images[5]) and label == int(labels[5])
    assert object_mask.shape == bias_mask.shape == (1, 64, 64)


def test_save_load_and_cache(small_benchmark, small_config, tmp_path, monkeypatch):
    path = small_benchmark.save(tmp_path)
    loaded = PlantedBiasBenchmark.load(path)
    assert loaded.config == small_config and loaded.biases == small_benchmark.biases
    for name, split in small_benchmark.splits.items():
        assert np.array_equal(loaded.split(name).images, split.images)
        assert np.array_equal(loaded.split(name).bias_masks, split.bias_masks)
        assert np.array_equal(loaded.split(name).object_masks, split.object_masks)

    def refuse(*args, **kwargs):
        raise AssertionError("the cached benchmark should have been reused")

    monkeypatch.setattr(benchmark_module, "generate_benchmark", refuse)
    cached, cached_path = load_or_generate_benchmark(tmp_path, small_config)
    assert cached_path == path and np.array_equal(cached.split("train").labels, small_benchmark.split("train").labels)
    with pytest.raises(AssertionError, match="reused"):
        load_or_generate_benchmark(tmp_path, attrs.evolve(small_config, seed=99))


@pytest.mark.parametrize("bad", [
    {"classes": (0, 1, 3)},                      # biased classes missing
    {"classes": (0, 0, 2, 4, 6)},
    {"bias_rate": 1.5},
    {"garment_size": 40},
    {"test_per_class": 600},
    {"watermark_class": 2},
    {"watermark_scale": 0.0},
    {"watermark_scale": 0.5},
])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        BenchmarkConfig(**bad)


def test_registry_lists_and_builds_the_benchmark(small_benchmark, small_config, tmp_path):
    assert "planted-bias-fashion" in dict(dataset_registry.choices())
    small_benchmark.save(tmp_path)
    dataset = dataset_registry.create("planted-bias-fashion", split="flipped", directory=tmp_path,
                                      config=small_config)
    assert len(dataset) == len(small_benchmark.split("flipped"))
    assert [c.name for c in dataset.class_infos] == small_benchmark.class_names
    assert "planted bias" in dataset.class_infos[1].description
