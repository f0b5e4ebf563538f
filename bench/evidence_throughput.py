"""Throughput of the evidence passes (not a test).

Prints images/s for a bare forward pass, forward+backward (input gradients, as in
feature attacks and saliency), and :meth:`ModelHandle.features_and_maps`, for the
benchmark's demo ResNet (64 px) and torchvision ResNet-50 (224 px, random
weights), with each figure's ratio to the bare forward pass.

Usage::

    python bench/evidence_throughput.py [--checkpoint var/demo/models/demo-robust-....pt]
                                        [--device cpu|cuda] [--seconds 3]
"""
from __future__ import annotations

import argparse
import glob
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.models import DEMO_ARCH, ModelHandle, build_architecture, load_model  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def images_per_second(step, batch: int, device: torch.device, seconds: float) -> float:
    """Run ``step()`` (one batch) repeatedly for about ``seconds`` after a warm-up."""
    for _ in range(2):
        step()
    _sync(device)
    runs, started = 0, time.perf_counter()
    while True:
        step()
        runs += 1
        _sync(device)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and runs >= 3:
            return runs * batch / elapsed


def measure(handle: ModelHandle, size: int, batch: int, device: torch.device, seconds: float,
            rounds: int = 3) -> dict[str, float]:
    x = torch.rand(batch, 3, size, size, device=device)
    labels = torch.randint(0, handle.num_classes, (batch,), device=device)

    def bare() -> None:
        with torch.no_grad():
            handle.logits(x)

    def forward_backward() -> None:
        inputs = x.clone().requires_grad_(True)
        F.cross_entropy(handle.logits(inputs), labels).backward()
        handle.module.zero_grad(set_to_none=True)

    def features_and_maps() -> None:
        with torch.no_grad():
            handle.features_and_maps(x)

    passes = {"bare forward": bare, "forward+backward": forward_backward, "handle features+maps": features_and_maps}
    best = dict.fromkeys(passes, 0.0)
    for _ in range(rounds):  # interleaved rounds, best of each: less sensitive to other load
        for name, step in passes.items():
            best[name] = max(best[name], images_per_second(step, batch, device, seconds))
    return best


def demo_handle(checkpoint: str | None, device: torch.device) -> tuple[ModelHandle, str]:
    candidates = [checkpoint] if checkpoint else sorted(glob.glob("var/demo/models/demo-*.pt"))
    for path in candidates:
        if path and os.path.isfile(path):
            return load_model(None, path, device=str(device)), f"{DEMO_ARCH} ({Path(path).name})"
    model = build_architecture(DEMO_ARCH, num_classes=10, width=32).to(device)
    return ModelHandle(model, arch=DEMO_ARCH, input_size=64), f"{DEMO_ARCH} (width 32, random weights)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="demo model checkpoint (default: first in var/demo/models)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per cell")
    parser.add_argument("--demo-batch", type=int, default=64)
    parser.add_argument("--resnet-batch", type=int, default=None, help="default 8 on CPU, 64 on GPU")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.set_flush_denormal(True)
    resnet_batch = args.resnet_batch or (64 if device.type == "cuda" else 8)

    demo, demo_name = demo_handle(args.checkpoint, device)
    resnet = ModelHandle(build_architecture("resnet50", num_classes=1000).to(device), arch="resnet50",
                         input_size=224)
    rows = [
        (demo_name, 64, args.demo_batch, measure(demo, 64, args.demo_batch, device, args.seconds)),
        ("resnet50 (random weights)", 224, resnet_batch, measure(resnet, 224, resnet_batch, device, args.seconds)),
    ]
    cpu = f"{torch.get_num_threads()} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"device: {device.type} ({cpu}), torch {torch.__version__}, {platform.machine()}")
    header = f"{'model':48s} {'px':>4s} {'batch':>5s}  {'pass':22s} {'img/s':>9s} {'ratio':>6s}"
    print(header)
    print("-" * len(header))
    for name, size, batch, results in rows:
        bare = results["bare forward"]
        for i, (label, value) in enumerate(results.items()):
            print(f"{name if i == 0 else '':48s} {size if i == 0 else '':>4} {batch if i == 0 else '':>5}  "
                  f"{label:22s} {value:9.1f} {value / bare:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
