"""Throughput of the Salient evidence job against the bare model, measured in the same run.

Rows: bare forward, bare forward+backward (gradient w.r.t. the input), the evidence features
pass (features + maps through the handle), the feature attack (images x steps / s), and the whole
``compute_salient_evidence``. Ratios: features pass vs bare forward, attack and whole job vs bare
forward+backward (goal >= 0.8x).

    .venv/bin/python bench/salient_evidence.py [--size 64] [--width 24] [--device cpu]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.models import ModelHandle, SmallResNet  # noqa: E402
from analysis.salient.attack import feature_attack  # noqa: E402
from analysis.salient.evidence import compute_salient_evidence  # noqa: E402
from analysis.salient.importance import collect_features  # noqa: E402


def rate(fn, images: int, repeat: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return images / best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=int, default=24)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--n", type=int, default=512, help="images of the features pass")
    parser.add_argument("--steps", type=int, default=10, help="attack steps measured")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # as the evidence job does, so anchor and job run alike
    model = SmallResNet(num_classes=args.classes, width=args.width)
    handle = ModelHandle(model, mean=(0.5,) * 3, std=(0.25,) * 3, input_size=args.size).to(args.device)
    bare = handle.module  # normalize + model, no feature extraction
    images = torch.rand(args.n, 3, args.size, args.size)
    labels = torch.arange(args.n) % args.classes
    batch = images[: args.batch].to(args.device)

    def forward():
        with torch.no_grad():
            bare(batch)

    def forward_backward():
        x = batch.clone().requires_grad_(True)
        torch.autograd.grad(bare(x).sum(), x)

    def features_pass():
        collect_features(handle, images, batch_size=args.batch)

    feats = torch.arange(args.batch) % handle.feature_dim

    def attack():
        feature_attack(handle, batch, feats, steps=args.steps, batch_size=args.batch)

    k_images, k_features, steps = 5, 5, args.steps
    job_classes = 2

    def whole_job():
        compute_salient_evidence(handle, images, labels, classes=range(job_classes), k_features=k_features,
                                 k_images=k_images, pool=20, attack_steps=steps, batch_size=args.batch)

    rows = {
        "bare forward": rate(forward, args.batch),
        "bare forward+backward": rate(forward_backward, args.batch),
        "evidence features pass": rate(features_pass, args.n, repeat=2),
        "feature attack (image-steps)": rate(attack, args.batch * args.steps, repeat=2),
    }
    # The whole job: the features pass (forward) plus the attacks (forward+backward), expressed as
    # forward+backward-equivalent images using the measured cost ratio of the two bare passes.
    fwd_cost = rows["bare forward+backward"] / rows["bare forward"]
    job_units = args.n * fwd_cost + job_classes * k_features * k_images * steps
    rows["whole evidence job (fwd+bwd-equivalent)"] = rate(whole_job, job_units, repeat=1)

    anchors = {
        "bare forward": "bare forward", "bare forward+backward": "bare forward+backward",
        "evidence features pass": "bare forward", "feature attack (image-steps)": "bare forward+backward",
        "whole evidence job (fwd+bwd-equivalent)": "bare forward+backward",
    }
    print(f"device {args.device}, SmallResNet width {args.width}, {args.size}px, batch {args.batch}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'pass':42s} {'images/s':>10s} {'ratio':>7s}  anchor")
    for name, value in rows.items():
        print(f"{name:42s} {value:10.1f} {value / rows[anchors[name]]:7.2f}  {anchors[name]}")


if __name__ == "__main__":
    main()
