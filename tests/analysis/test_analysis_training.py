"""Training the demo ResNet: PGD, checkpoints, the pipeline cache and the bias-flip check."""
from __future__ import annotations

import json

import attrs
import pytest
import torch
from torch.nn import functional as F

from analysis.datasets import BenchmarkConfig, generate_benchmark
from analysis.models import DEMO_ARCH, build_architecture, load_model
from analysis.models.handle import NormalizedClassifier
from analysis.training import build_benchmark_and_models, l2_pgd, standard_config, train_model
from analysis.training import pipeline as pipeline_module
from analysis.training.trainer import evaluate_benchmark

#: 32 px images keep the bias-flip test fast; the biased classes are mutually confusable garments.
FLIP_BENCHMARK = BenchmarkConfig(seed=3, classes=(0, 2, 4, 6, 8), train_per_class=400, test_per_class=100,
                                 image_size=32, garment_size=16)


def test_l2_pgd_stays_in_the_ball_and_raises_the_loss():
    model = NormalizedClassifier(build_architecture(DEMO_ARCH, num_classes=4, width=8), (0.5,) * 3, (0.25,) * 3)
    model.eval()
    x, y = torch.rand(6, 3, 32, 32), torch.randint(0, 4, (6,))
    adversarial = l2_pgd(model, x, y, eps=0.5, steps=5)
    norms = (adversarial - x).flatten(1).norm(dim=1)
    assert (norms <= 0.5 + 1e-4).all() and (norms > 0.1).all()
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(model(adversarial), y) > F.cross_entropy(model(x), y)
    assert torch.equal(l2_pgd(model, x, y, eps=0.0, steps=3), x)


def test_training_reports_progress_and_saves_a_loadable_checkpoint(small_benchmark, tmp_path):
    calls = []
    config = standard_config(width=8, epochs=1, batch_size=64)
    result = train_model(small_benchmark, config, progress=lambda d, t, m: calls.append((d, t, m)),
                         show_progress=False)
    assert calls and calls[-1][0] == calls[-1][1] and all(d <= t for d, t, _ in calls)
    assert [d for d, _, _ in calls] == sorted(d for d, _, _ in calls)
    metrics = result.metrics
    assert set(metrics["per_class"]) == set(small_benchmark.class_names)
    assert set(metrics["biased_classes"]) == {"background", "watermark", "object"}
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["train_images"] == len(small_benchmark.split("train"))
    # weights depend on the CPU's kernels (the README, "Another CPU, other figures"): the metrics name them
    assert metrics["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and metrics["torch_threads"] == 2

    path = tmp_path / "model.pt"
    result.save(path, tmp_path / "metrics.json")
    handle = load_model(None, path)
    assert handle.class_names == small_benchmark.class_names and handle.input_size == 64
    x, _ = small_benchmark.split("test").tensors(slice(0, 8))
    with torch.no_grad():
        assert torch.allclose(handle.logits(x), result.handle().logits(x), atol=1e-5)
    assert json.loads((tmp_path / "metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]
    # the reloaded model reproduces the recorded metrics (up to one near-tie flipped by float noise)
    reloaded = evaluate_benchmark(handle.module, small_benchmark)["test_accuracy"]
    assert abs(reloaded - metrics["test_accuracy"]) <= 1 / len(small_benchmark.split("test"))


def test_pipeline_reuses_cached_checkpoints(tmp_path, monkeypatch, fashion_mnist_available):
    tiny = BenchmarkConfig(seed=1, classes=(2, 4, 6), train_per_class=20, test_per_class=10,
                           image_size=32, garment_size=16)
    configs = {"standard": standard_config(width=4, epochs=1),
               "robust": attrs.evolve(standard_config(width=4, epochs=1), flavour="robust", pgd_steps=1,
                                      robust_eval_images=8, robust_eval_steps=1, warm_start=True)}
    stored = []

    class RecordingStore:
        def put(self, data, ext):
            stored.append(ext)
            return f"key-{len(stored)}"

    progress = []
    first = build_benchmark_and_models(tmp_path, lambda d, t, m: progress.append((d, t)), benchmark_config=tiny,
                                       train_configs=configs, store=RecordingStore(), show_progress=False)
    assert not any(m.reused for m in first.models.values())
    robust_metrics = first.models["robust"].metrics
    assert robust_metrics["eps"] == 0.5 and "robust_accuracy" in robust_metrics and robust_metrics["warm_start"]
    assert progress[-1] == (1000, 1000) and all(b[0] >= a[0] for a, b in zip(progress, progress[1:]))
    assert stored == ["pt", "json", "pt", "json"]

    monkeypatch.setattr(pipeline_module, "train_model", lambda *a, **k: pytest.fail("should reuse the cache"))
    second = build_benchmark_and_models(tmp_path, benchmark_config=tiny, train_configs=configs, show_progress=False)
    assert all(m.reused for m in second.models.values())
    assert second.models["standard"].checkpoint_path == first.models["standard"].checkpoint_path
    summary = json.loads(second.summary_path.read_text())
    assert summary["models"]["robust"]["reused"] is True
    with pytest.raises(ValueError, match="standard flavour"):
        build_benchmark_and_models(tmp_path, benchmark_config=tiny, train_configs={"robust": configs["robust"]})


def test_warm_start_needs_weights(small_benchmark):
    with pytest.raises(ValueError, match="initial_state_dict"):
        train_model(small_benchmark, standard_config(warm_start=True), show_progress=False)


@pytest.mark.slow
def test_planted_biases_are_learned(fashion_mnist_available):
    """On each biased class, accuracy on the bias-flipped test falls clearly below the normal test."""
    benchmark = generate_benchmark(FLIP_BENCHMARK, show_progress=False)
    result = train_model(benchmark, standard_config(width=16, epochs=4, batch_size=64, lr=0.05, seed=0),
                         show_progress=False)
    metrics = result.metrics
    assert metrics["test_accuracy"] > 0.7
    for kind, entry in metrics["biased_classes"].items():
        assert entry["test"] > 0.6, (kind, entry)
        assert entry["flipped"] < entry["test"] - 0.25, (kind, entry)
        assert entry["cue_attraction"] > 0.2, (kind, entry)  # the cue alone pulls other classes' images
    assert metrics["flipped_accuracy"] < metrics["test_accuracy"] - 0.15
