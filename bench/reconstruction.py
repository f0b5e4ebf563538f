"""Benchmark: training-set reconstruction (Haim et al. 2022), time per 1,000 steps and best-10 SSIM.

Two tables.  *Timing*: seconds per 1,000 optimisation steps of the KKT objective for the paper's
D-1000-1000-1 network at several training-set sizes (m = 2 x n candidates, float64), measured
over ``--timing-steps`` steps and scaled up (the cost per step does not depend on the weights, so
no training is needed).  *Protocol*: the seed paper's Fig. 6 as a table: one model per level of
``--variant`` (positional: base, L1, L2, L3; contrast; intensity) trained to loss < 1e-5 on
Fashion-MNIST T-shirt/top vs Shirt (``--classes``), its clean test accuracy on the test split's 2,000 images of
the two classes, and the mean SSIM of the best 10 reconstructions next to the same score for the
un-optimised start (mean image + small noise) and for unit-noise candidates.

    .venv/bin/python bench/reconstruction.py --skip-timing                       # the demo's size
    .venv/bin/python bench/reconstruction.py --skip-timing --per-side 50 --steps 3000
    .venv/bin/python bench/reconstruction.py --device cuda    # a lent GPU
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.reconstruction import (  # noqa: E402
    VARIANTS,
    HomogeneousMLP,
    build_task,
    build_test,
    run_reconstruction,
)
from analysis.reconstruction.bias import DEFAULT_PAIR  # noqa: E402
from analysis.reconstruction.reconstruct import reconstruct  # noqa: E402

#: (images per side, image side) of the timing table
TIMING = ((50, 16), (100, 16), (100, 28), (250, 28))
def seconds_per_1000(per_side: int, size: int, hidden: int, steps: int, device: str) -> float:
    """Time ``steps`` reconstruction steps (after one warm-up step) and scale to 1,000."""
    model = HomogeneousMLP(size * size, hidden=hidden, seed=0).to(device)
    reconstruct(model, 4 * per_side, steps=1, device=device)  # warm-up (allocations, kernels)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    reconstruct(model, 4 * per_side, steps=steps, log_every=steps, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 1000.0 * (time.perf_counter() - start) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--hidden", type=int, default=1000, help="hidden width of the timing table")
    parser.add_argument("--timing-steps", type=int, default=10, help="steps timed per row")
    parser.add_argument("--variant", default="positional", choices=sorted(VARIANTS), help="the models to train")
    parser.add_argument("--per-side", type=int, default=25, help="training images per class")
    parser.add_argument("--size", type=int, default=16, help="image side")
    parser.add_argument("--run-hidden", type=int, default=1000, help="hidden width of the protocol's models")
    parser.add_argument("--steps", type=int, default=1000, help="reconstruction steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", default=",".join(map(str, DEFAULT_PAIR)), help="Fashion-MNIST classes of the runs")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-runs", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device {args.device}, {torch.get_num_threads()} torch thread(s), float64")

    if not args.skip_timing:
        print(f"\nTiming: D-{args.hidden}-{args.hidden}-1, m = 2 n candidates, {args.timing_steps} steps timed")
        print(f"{'images':>7s} {'side':>5s} {'D':>5s} {'m':>5s} {'s / 1000 steps':>15s}")
        for per_side, size in TIMING:
            sec = seconds_per_1000(per_side, size, args.hidden, args.timing_steps, args.device)
            print(f"{2 * per_side:7d} {size:5d} {size * size:5d} {4 * per_side:5d} {sec:15.1f}", flush=True)

    if not args.skip_runs:
        classes = [int(c) for c in args.classes.split(",")]
        print(f"\nProtocol {args.variant}: Fashion-MNIST classes {classes}, {args.per_side} per side at "
              f"{args.size} px, width {args.run_hidden}, {args.steps} steps, seed {args.seed}")
        print(f"{'model':9s} {'epochs':>6s} {'train s':>7s} {'rec s':>6s} {'test acc':>8s} {'best-10':>7s} "
              f"{'start':>6s} {'noise':>6s} {'trigger shows':>13s}")
        for level in VARIANTS[args.variant]:
            config = {"classes": classes, "per_side": args.per_side, "size": args.size, "hidden": args.run_hidden,
                      "steps": args.steps, "bias": level, "seed": args.seed, "device": args.device,
                      "log_every": 100}
            result = run_reconstruction(build_task(config), config, test=build_test(config))
            report = result["trigger_report"]
            shows = f"{report['best_k_shown']:.0%}" if report else "-"
            print(f"{level:9s} {result['train']['epochs']:6d} {result['timings']['train_s']:7.1f} "
                  f"{result['timings']['reconstruct_s']:6.1f} {result['test_accuracy']:8.3f} "
                  f"{result['best_k_mean']:7.3f} {result['baseline_initial_best_k_mean']:6.3f} "
                  f"{result['baseline_noise_best_k_mean']:6.3f} {shows:>13s}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
