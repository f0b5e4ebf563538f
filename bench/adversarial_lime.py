"""Throughput of the adversarial-explanation evidence: I-FGSM (step 0.001, <= 10 steps) then LIME
(quickshift kernel_size 4, max_dist 200, ratio 0.2, segmented as at 224 px; kernel width 0.25; top 8
superpixels) per image.

Prints images/s of the whole step, of the attack alone and of LIME alone, the share of the time
spent in LIME, and the share of each image the explanation shows (``--segment-size 0``: quickshift
at the image's own size, as before). Random-weight demo ResNet on random images, so every setting is what the
evidence job runs; ``--samples`` is LIME's perturbation count (paper: 1000).

    .venv/bin/python bench/adversarial_lime.py [--size 64] [--n 8] [--samples 1000] [--segment-size 224]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.misclassification.evidence import adversarial_with_explanations  # noqa: E402
from analysis.models import ModelHandle, SmallResNet  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=int, default=24)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--n", type=int, default=8, help="images attacked and explained")
    parser.add_argument("--samples", type=int, default=1000, help="LIME samples per image")
    parser.add_argument("--step", type=float, default=0.01,
                        help="I-FGSM step (the study default is 0.001; an untrained model rarely flips at that step)")
    parser.add_argument("--segment-size", type=int, default=224, help="quickshift image side; 0 = the image's own")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = SmallResNet(num_classes=args.classes, width=args.width).eval()
    handle = ModelHandle(model, mean=(0.5,) * 3, std=(0.25,) * 3, input_size=args.size).to(args.device)
    # smooth random images (blobs) so quickshift finds superpixels as on real pictures
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.random((args.n, 3, 8, 8), dtype=np.float32))
    images = torch.nn.functional.interpolate(coarse, size=args.size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        labels = handle.logits(images).argmax(1).cpu()  # every image starts correctly classified
    warm = images[:2].clone().requires_grad_(True)  # first backward pass: allocator and autograd warm-up
    handle.logits(warm).sum().backward()
    start = time.perf_counter()
    result = adversarial_with_explanations(handle, images, labels, step=args.step, max_steps=10,
                                           lime={"num_samples": args.samples,
                                                 "segment_size": args.segment_size or None})
    total = time.perf_counter() - start
    explained = len(result["indices"])
    print(f"device {args.device}, {args.size}px, width {args.width}, {args.n} images, LIME samples {args.samples}")
    print(f"flipped within 10 steps: {explained}/{args.n} (mean steps {result['adversarial'].steps.mean():.1f})")
    print(f"attack:          {args.n / result['attack_seconds']:8.1f} images/s")
    if explained:
        print(f"LIME:            {explained / result['lime_seconds']:8.2f} images/s")
        print(f"attack + LIME:   {explained / total:8.2f} explained images/s  ({total:.1f}s)")
        print(f"share of time in LIME: {result['lime_seconds'] / total:.1%}")
        shown = [e.mask.mean() for e in result["explanations"]]
        print(f"share of the image shown: mean {np.mean(shown):.1%}, max {max(shown):.1%}")


if __name__ == "__main__":
    main()
