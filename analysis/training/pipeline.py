"""Build the benchmark and train both demo models, reusing cached results.

Command line::

    python -m analysis.training var/demo           # generate + train (or reuse)
    python -m analysis.training var/demo --force   # retrain

Layout of ``out_dir``::

    benchmark/planted-bias-fashion-<config hash>-<generator code hash>.npz
    models/demo-standard-<hash>.pt    models/demo-standard-<hash>.metrics.json
    models/demo-robust-<hash>.pt      models/demo-robust-<hash>.metrics.json
    summary.json

``<hash>`` covers the benchmark and training configurations (seeds included) and the version of the
code that generates and trains (:mod:`analysis.code_version`), so changing any of them retrains while
an unchanged setup reuses the checkpoints.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import attrs

from ..code_version import training_version
from ..datasets.benchmark import BenchmarkConfig, load_or_generate_benchmark
from ..models.checkpoints import read_checkpoint
from .config import TrainConfig, robust_config, standard_config
from .trainer import train_model

ProgressCallback = Callable[[int, int, str], None]

#: Share of the overall progress bar given to each stage.
_STAGE_WEIGHTS = {"benchmark": 5, "standard": 30, "robust": 65}


@attrs.frozen
class ModelArtifacts:
    """Files of one trained flavour.

    Attributes
    ----------
    flavour : str
    checkpoint_path, metrics_path : Path
    metrics : dict
    reused : bool
        True when the checkpoint came from the cache.
    store_keys : dict
        Artifact-store keys (``checkpoint``, ``metrics``) when a store was given.
    """

    flavour: str
    checkpoint_path: Path
    metrics_path: Path
    metrics: dict
    reused: bool
    store_keys: dict = attrs.field(factory=dict)


@attrs.frozen
class PipelineResult:
    """Outcome of :func:`build_benchmark_and_models`."""

    benchmark_path: Path
    benchmark_config: BenchmarkConfig
    models: dict[str, ModelArtifacts]
    summary_path: Path


def _model_stem(flavour: str, benchmark_config: BenchmarkConfig, train_config: TrainConfig,
                parent: str = "") -> str:
    """Cache key of a checkpoint: the benchmark's config (its seed included), the training config (its seed
    included), the parent checkpoint of a warm start, and the version of the code that generates the benchmark
    and trains the model (:func:`analysis.code_version.training_version`), so a stale model is never reused."""
    blob = f"{benchmark_config.fingerprint()}:{train_config.fingerprint()}:{parent}:{training_version()}"
    return f"demo-{flavour}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


class _StageProgress:
    """Maps each stage's ``(done, total)`` onto one overall 0..1000 scale."""

    def __init__(self, callback: ProgressCallback | None, stages: list[str]) -> None:
        self.callback = callback
        total = sum(_STAGE_WEIGHTS[s] for s in stages)
        self.offsets, offset = {}, 0.0
        for stage in stages:
            self.offsets[stage] = (offset, _STAGE_WEIGHTS[stage] / total)
            offset += _STAGE_WEIGHTS[stage] / total

    def stage(self, name: str) -> ProgressCallback | None:
        if self.callback is None:
            return None
        start, width = self.offsets[name]

        def report(done: int, total: int, message: str) -> None:
            fraction = start + width * (done / total if total else 1.0)
            self.callback(min(1000, round(1000 * fraction)), 1000, message)

        return report


def build_benchmark_and_models(out_dir: str | os.PathLike, progress: ProgressCallback | None = None,
                               reuse: bool = True, *, benchmark_config: BenchmarkConfig | None = None,
                               train_configs: dict[str, TrainConfig] | None = None, store: Any = None,
                               fashion_mnist_dir: str | None = None, show_progress: bool = True
                               ) -> PipelineResult:
    """Generate (or load) the benchmark and train (or reuse) the standard and robust models.

    Parameters
    ----------
    out_dir : path
        Working directory (e.g. ``var/demo``); see the module docstring for its layout.
    progress : callable, optional
        ``progress(done, total, message)`` on one overall scale (total = 1000).
    reuse : bool
        Reuse a cached checkpoint + metrics for an unchanged configuration.
    benchmark_config : BenchmarkConfig, optional
        Default :class:`BenchmarkConfig()` (10 classes, 1000/200/200 per class, 64 px).
    train_configs : dict, optional
        ``{"standard": TrainConfig, "robust": TrainConfig}``; defaults from
        :func:`standard_config` / :func:`robust_config`.  Give a subset to train fewer.
    store : ArtifactStore, optional
        If given, checkpoints and metrics are also put into it (keys in the result).
    fashion_mnist_dir : str, optional
        Fashion-MNIST location if not Debian's.
    show_progress : bool
        tqdm bars on the terminal.

    Returns
    -------
    PipelineResult
    """
    out_dir = Path(out_dir)
    benchmark_config = benchmark_config or BenchmarkConfig()
    if train_configs is None:
        train_configs = {"standard": standard_config(), "robust": robust_config()}
    for flavour, config in train_configs.items():
        if config.flavour != flavour:
            raise ValueError(f"train_configs[{flavour!r}] has flavour {config.flavour!r}")
    if train_configs.get("robust") is not None and train_configs["robust"].warm_start:
        if "standard" not in train_configs:
            raise ValueError("a warm-started robust model needs the standard flavour in train_configs")
        train_configs = {"standard": train_configs["standard"],
                         **{k: v for k, v in train_configs.items() if k != "standard"}}
    stages = _StageProgress(progress, ["benchmark", *train_configs])

    benchmark, benchmark_path = load_or_generate_benchmark(
        out_dir / "benchmark", benchmark_config, fashion_mnist_dir=fashion_mnist_dir,
        progress=stages.stage("benchmark"), show_progress=show_progress)

    models: dict[str, ModelArtifacts] = {}
    model_dir = out_dir / "models"
    model_dir.mkdir(parents=True, exist_ok=True)
    for flavour, config in train_configs.items():
        parent = models["standard"].checkpoint_path.stem if config.warm_start else ""
        stem = _model_stem(flavour, benchmark_config, config, parent)
        checkpoint_path = model_dir / f"{stem}.pt"
        metrics_path = model_dir / f"{stem}.metrics.json"
        report = stages.stage(flavour)
        if reuse and checkpoint_path.is_file() and metrics_path.is_file():
            metrics = json.loads(metrics_path.read_text())
            reused = True
            if report is not None:
                report(1, 1, f"{flavour}: reused {checkpoint_path.name}")
        else:
            initial = read_checkpoint(models["standard"].checkpoint_path).state_dict if config.warm_start else None
            result = train_model(benchmark, config, progress=report, show_progress=show_progress,
                                 initial_state_dict=initial)
            result.save(checkpoint_path, metrics_path)
            metrics, reused = result.metrics, False
        keys = {}
        if store is not None:
            keys = {"checkpoint": store.put(checkpoint_path.read_bytes(), "pt"),
                    "metrics": store.put(metrics_path.read_bytes(), "json")}
        models[flavour] = ModelArtifacts(flavour=flavour, checkpoint_path=checkpoint_path,
                                         metrics_path=metrics_path, metrics=metrics, reused=reused,
                                         store_keys=keys)

    summary_path = out_dir / "summary.json"
    summary = {
        "benchmark": {"path": str(benchmark_path), "config": attrs.asdict(benchmark_config),
                      "generation_seconds": benchmark.generation_seconds},
        "models": {f: {"checkpoint": str(m.checkpoint_path), "metrics": str(m.metrics_path), "reused": m.reused,
                       "store_keys": m.store_keys, **summarize_metrics(m.metrics)}
                   for f, m in models.items()},
    }
    summary_path.write_text(json.dumps(summary, indent=2))
    return PipelineResult(benchmark_path=benchmark_path, benchmark_config=benchmark_config, models=models,
                          summary_path=summary_path)


def summarize_metrics(metrics: dict) -> dict:
    """The headline numbers of a metrics dict (accuracies, bias gaps, timing)."""
    keys = ("test_accuracy", "flipped_accuracy", "robust_accuracy", "train_seconds", "train_images",
            "epochs", "width", "eps", "pgd_steps")
    summary = {k: metrics[k] for k in keys if k in metrics}
    summary["biased_classes"] = metrics.get("biased_classes", {})
    return summary


def format_report(result: PipelineResult) -> str:
    """Human-readable table of the pipeline's metrics."""
    lines = []
    for flavour, model in result.models.items():
        m = model.metrics
        line = (f"{flavour:8s} test acc {m['test_accuracy']:.3f}  flipped acc {m['flipped_accuracy']:.3f}"
                f"  train {m.get('train_seconds', float('nan')):.0f}s"
                + (f"  robust acc (eps {m['eps']}) {m['robust_accuracy']:.3f}" if "robust_accuracy" in m else "")
                + ("  [reused]" if model.reused else ""))
        lines.append(line)
        for kind, b in m["biased_classes"].items():
            lines.append(f"    {kind:10s} {b['class']:9s} test {b['test']:.3f} -> flipped {b['flipped']:.3f}"
                         f"  (cue pulls {b['cue_attraction']:.1%} of other classes' flipped images)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default="var/demo")
    parser.add_argument("--force", action="store_true", help="retrain even if cached checkpoints exist")
    parser.add_argument("--only", choices=["standard"], help="train only the standard flavour")
    args = parser.parse_args(argv)
    configs = {"standard": standard_config(), "robust": robust_config()}
    if args.only == "standard":
        configs = {"standard": configs["standard"]}
    result = build_benchmark_and_models(args.out_dir, reuse=not args.force, train_configs=configs)
    print(format_report(result))
    print(f"summary: {result.summary_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
