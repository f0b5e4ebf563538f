"""``manage.py build_benchmark``: generate the planted-bias benchmark and train (or reuse) its models."""
from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotation.management.progress import tqdm_progress
from annotation.services.registry import builtin_entries_ensure


class Command(BaseCommand):
    help = "Build the built-in benchmark and train (or reuse) the standard and robust demo models."

    def add_arguments(self, parser):
        parser.add_argument("--dir", type=Path, default=None, help="default: SALIENT_BENCHMARK_DIR")
        parser.add_argument("--benchmark", type=json.loads, default={}, help="benchmark overrides as JSON")
        parser.add_argument("--training", type=json.loads, default={}, help="training overrides as JSON per model")
        parser.add_argument("--flavours", nargs="+", default=["standard", "robust"])

    def handle(self, *args, dir: Path | None, benchmark: dict, training: dict, flavours: list[str], **options):
        # deferred: loads scikit-image, torch
        from analysis.salient.benchmark_inputs import benchmark_inputs

        work_dir = dir or Path(settings.SALIENT_BENCHMARK_DIR)
        try:
            bench, handles, paths = benchmark_inputs(work_dir, benchmark=benchmark, training=training,
                                                     flavours=flavours, progress=tqdm_progress())
        except (TypeError, ValueError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(
            f"benchmark: {bench.num_classes} classes, " + ", ".join(f"{n} {len(bench.split(n))}" for n in bench.splits)
        ))

        builtin_entries_ensure()
        for flavour, path in paths.items():
            metrics = json.loads(path.with_suffix(".metrics.json").read_text())
            self.stdout.write(f"{flavour:9s} test {metrics['test_accuracy']:.3f}  "
                              f"flipped {metrics['flipped_accuracy']:.3f}"
                              f"  {path}")
