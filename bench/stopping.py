"""Benchmark: early-stopping policies on simulated 5-answer feature-panel (core/spurious) studies.

Answers of a simulated crowd (``analysis.crowd_sim.CrowdMix``: good and sloppy workers, spammers, ambiguous
tasks; ``--crowd mixed|noisy`` for more of them) are replayed in random orders under each policy of
``analysis.aggregation.stopping``, with worker reliability from Dawid-Skene on all the answers (each task's own
left out) or the prior alone. Prints the share of answers saved, the agreement with the full-answer label and the
accuracy against the simulated truth, per policy (the full-answer labels' own accuracy on the first line). No Django.

    .venv/bin/python bench/stopping.py                    # 300 tasks x 5 answers, 5 orders, 3 seeds
    .venv/bin/python bench/stopping.py --crowd noisy --tasks 1000
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.aggregation import ThresholdVote  # noqa: E402
from analysis.aggregation.reliability import CrowdModel, fit_crowd_model  # noqa: E402
from analysis.aggregation.stopping import POLICIES, VoteSpace, replay  # noqa: E402
from analysis.crowd_sim import MIXED_CROWD, NOISY_CROWD, CrowdMix, mixed_crowd_answers  # noqa: E402

VALUES = ("main_object", "separate_object", "background")
SPURIOUS = ("separate_object", "background")


def space(per_task: int) -> VoteSpace:
    rule = ThresholdVote(positive_values=SPURIOUS, threshold=per_task // 2 + 1, wanted=per_task, counts=VALUES)
    return VoteSpace(VALUES, lambda table: rule.fit(table).table_, per_task)


def run(tasks: int, per_task: int, mix: CrowdMix, orders: int, seed: int, confidence: float, prior: bool) -> dict:
    rng = np.random.default_rng(seed)
    truths = [VALUES[i] for i in rng.choice(3, size=tasks, p=[0.5, 0.25, 0.25])]
    rows = pd.DataFrame(mixed_crowd_answers(truths, VALUES, per_task, mix, seed=seed),
                        columns=["task", "worker", "label"])
    vs = space(per_task)
    model = (CrowdModel(n_labels=len(vs.labels)) if prior else
             fit_crowd_model(rows["task"], rows["worker"], [vs.vote[v] for v in rows["label"]], len(vs.labels)))
    groups = [(t, g["label"].tolist(), g["worker"].tolist()) for t, g in rows.groupby("task")]
    perms = [[rng.permutation(len(v)) for _ in range(orders)] for _, v, _ in groups]
    full = vs.labels_of([v for _, v, _ in groups])
    truth = {t: "spurious" if truths[t] in SPURIOUS else "core" for t, _, _ in groups}
    out = {"full-vs-truth": float(np.mean([f == truth[t] for f, (t, _, _) in zip(full, groups)]))}
    for name, cls in POLICIES.items():
        policy = cls(confidence=confidence) if name == "predictive" else cls()
        result = replay(vs, groups, policy, model, perms, truth)
        out[name] = (result.saved, result.agreement, result.accuracy)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--per-task", type=int, default=5)
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--confidence", type=float, default=0.99)
    parser.add_argument("--crowd", choices=["qualified", "mixed", "noisy"], default="qualified",
                        help="CrowdMix() (5 %% spammers, sloppy workers, ambiguous tasks), MIXED_CROWD (10 %%), "
                             "NOISY_CROWD (20 %%, good workers at 0.85)")
    parser.add_argument("--prior", action="store_true", help="every worker at the prior accuracy")
    args = parser.parse_args()
    mix = {"qualified": CrowdMix(), "mixed": MIXED_CROWD, "noisy": NOISY_CROWD}[args.crowd]
    runs = [run(args.tasks, args.per_task, mix, args.orders, seed, args.confidence, args.prior)
            for seed in range(args.seeds)]
    print(f"{args.crowd} crowd, {args.tasks} tasks x {args.per_task} answers, "
          f"{args.seeds} seeds x {args.orders} orders, reliability {'prior' if args.prior else 'Dawid-Skene'}; "
          f"full-answer label = truth on {np.mean([r['full-vs-truth'] for r in runs]):.3f}")
    for name in POLICIES:
        saved, agree, right = ([r[name][i] for r in runs] for i in range(3))
        print(f"{name:<10} saved {np.mean(saved):.3f} (min {min(saved):.3f})  "
              f"agreement {np.mean(agree):.4f} (min {min(agree):.4f})  accuracy {np.mean(right):.4f}")


if __name__ == "__main__":
    main()
