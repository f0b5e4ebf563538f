"""A rebuild of the benchmark and both demo models gives the same bytes and weights, whatever the caller's
torch thread count (training fixes its own), and another training thread count is another cached model."""
from __future__ import annotations

import hashlib
from pathlib import Path

import attrs
import torch

from analysis.datasets import BenchmarkConfig
from analysis.models.checkpoints import read_checkpoint
from analysis.training import build_benchmark_and_models, robust_config, standard_config

TINY = BenchmarkConfig(seed=2, classes=(2, 4, 6), train_per_class=40, test_per_class=10, image_size=32,
                       garment_size=16)


def _configs(**overrides):
    return {"standard": standard_config(width=8, epochs=2, **overrides),
            "robust": robust_config(width=8, epochs=1, robust_eval_images=8, robust_eval_steps=1, **overrides)}


def _weights_digest(path: Path) -> str:
    state = read_checkpoint(path).state_dict
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _build(out_dir: Path, caller_threads: int, **overrides) -> dict[str, str]:
    previous = torch.get_num_threads()
    torch.set_num_threads(caller_threads)
    try:
        result = build_benchmark_and_models(out_dir, benchmark_config=TINY, train_configs=_configs(**overrides),
                                            show_progress=False)
    finally:
        torch.set_num_threads(previous)
    return {"benchmark": hashlib.sha256(result.benchmark_path.read_bytes()).hexdigest(),
            **{flavour: _weights_digest(m.checkpoint_path) for flavour, m in result.models.items()},
            **{f"{flavour} file": m.checkpoint_path.name for flavour, m in result.models.items()}}


def test_rebuild_gives_identical_benchmark_and_weights(tmp_path, fashion_mnist_available):
    first = _build(tmp_path / "a", caller_threads=1)
    second = _build(tmp_path / "b", caller_threads=2)
    assert first == second
    one_thread = _build(tmp_path / "c", caller_threads=2, threads=1)
    assert one_thread["benchmark"] == first["benchmark"]
    # CPU kernels split sums by thread: other weights, so another cache entry, never a silent reuse.
    assert one_thread["standard file"] != first["standard file"]
    assert attrs.evolve(_configs()["standard"], threads=1).fingerprint() != _configs()["standard"].fingerprint()
