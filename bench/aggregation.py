"""Benchmark: our majority vote and Dawid-Skene against crowd-kit's own, in the same run.

Default size (the issue's check): 1,000,000 answers = 100,000 tasks x 10 answers, 1,000 workers,
3 labels, workers of accuracy 0.5-0.95 plus 5 % spammers. Prints a table of seconds (best of
``--repeat``), answers/s and label accuracy against the simulated truth, and exits non-zero if ours
is slower than crowd-kit's by more than the timing noise (``--slack``).

    .venv/bin/python bench/aggregation.py            # the full run (about a minute)
    .venv/bin/python bench/aggregation.py --tasks 10000 --repeat 1
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.aggregation import DawidSkene, MajorityVote  # noqa: E402
from analysis.aggregation.agreement import count_matrix, fleiss_kappa, krippendorff_alpha  # noqa: E402
from analysis.aggregation.majority_settled import majority_settled_counts  # noqa: E402

LABELS = np.array(["a", "b", "c"])


def simulate(tasks: int, workers: int, per_task: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """A long answers table and the truth per task."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(len(LABELS), size=tasks)
    accuracy = rng.uniform(0.5, 0.95, workers)
    accuracy[rng.random(workers) < 0.05] = 1 / len(LABELS)  # spammers
    task = np.repeat(np.arange(tasks), per_task)
    # per_task distinct workers per task: a random offset and stride walk over the worker ids.
    start = rng.integers(workers, size=tasks)
    worker = (np.repeat(start, per_task) + np.tile(np.arange(per_task), tasks) * 7) % workers
    right = rng.random(tasks * per_task) < accuracy[worker]
    wrong = (truth[task] + rng.integers(1, len(LABELS), tasks * per_task)) % len(LABELS)
    label = np.where(right, truth[task], wrong)
    answers = pd.DataFrame({"task": task, "worker": worker, "label": LABELS[label]})
    return answers, pd.Series(LABELS[truth], index=np.arange(tasks))


def best_of(repeat: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def accuracy(labels: pd.Series, truth: pd.Series) -> float:
    return float((labels.reindex(truth.index).astype(object) == truth.astype(object)).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1_000)
    parser.add_argument("--per-task", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ds-iter", type=int, default=100)
    parser.add_argument("--slack", type=float, default=1.10, help="ours may take this factor of crowd-kit's time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from crowdkit.aggregation import DawidSkene as CKDawidSkene
    from crowdkit.aggregation import MajorityVote as CKMajorityVote

    answers, truth = simulate(args.tasks, args.workers, args.per_task, args.seed)
    n = len(answers)
    print(f"{n:,} answers, {args.tasks:,} tasks, {args.workers:,} workers, {len(LABELS)} labels; best of {args.repeat}")

    def ck_ds():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return CKDawidSkene(n_iter=args.ds_iter).fit(answers)

    rows = []
    t, ours_mv = best_of(args.repeat, lambda: MajorityVote(labels=list(LABELS)).fit(answers))
    rows.append(("majority vote", "ours", t, accuracy(ours_mv.labels_, truth)))
    t, ck_mv = best_of(args.repeat, lambda: CKMajorityVote().fit(answers))
    rows.append(("majority vote", "crowd-kit", t, accuracy(ck_mv.labels_, truth)))
    t, ours_ds = best_of(args.repeat, lambda: DawidSkene(n_iter=args.ds_iter).fit(answers))
    rows.append(("Dawid-Skene", "ours", t, accuracy(ours_ds.labels_, truth)))
    t, ck = best_of(args.repeat, ck_ds)
    rows.append(("Dawid-Skene", "crowd-kit", t, accuracy(ck.labels_, truth)))

    print(f"{'algorithm':<15}{'implementation':<16}{'seconds':>9}{'answers/s':>14}{'accuracy':>10}")
    for name, impl, seconds, acc in rows:
        print(f"{name:<15}{impl:<16}{seconds:>9.3f}{n / seconds:>14,.0f}{acc:>10.4f}")

    # Same labels? Majority vote ties are broken differently (ours reports a tie; crowd-kit picks one).
    ties = ours_mv.table_["tie"]
    ours = ours_mv.labels_[~ties]
    same_mv = (ours.astype(str) == ck_mv.labels_.reindex(ours.index).astype(str)).mean()
    same_ds = (ours_ds.labels_.astype(str) == ck.labels_.reindex(ours_ds.labels_.index).astype(str)).mean()
    print(f"labels identical to crowd-kit: majority vote {same_mv:.4%} of non-tied tasks ({int(ties.sum()):,} ties), "
          f"Dawid-Skene {same_ds:.4%}")

    start = time.perf_counter()
    counts = count_matrix(answers, list(LABELS))
    kappa, alpha = fleiss_kappa(counts), krippendorff_alpha(counts)
    agreement_s = time.perf_counter() - start
    print(f"agreement: Fleiss' kappa {kappa:.4f}, Krippendorff's alpha {alpha:.4f} ({agreement_s:.2f} s)")

    # Early stopping, replayed in answer order with 5 wanted answers per task (first 5 answers of each).
    first5 = answers.groupby("task").head(5)
    order = first5.groupby("task").cumcount().to_numpy()
    codes = pd.Index(LABELS).get_indexer(first5["label"])
    tasks = first5["task"].to_numpy()
    running = np.zeros((args.tasks, len(LABELS)), dtype=np.int64)
    stopped_at = np.full(args.tasks, 5)
    for k in range(5):
        step = order == k
        np.add.at(running, (tasks[step], codes[step]), 1)
        newly = majority_settled_counts(running, np.full(args.tasks, 4 - k)) & (stopped_at == 5)
        stopped_at[newly] = k + 1
    saved = int((5 - stopped_at).sum())
    print(f"early stopping (5 wanted, majority): {saved:,} of {5 * args.tasks:,} answers saved "
          f"({saved / (5 * args.tasks):.1%}); tasks stopped after 3 answers: {(stopped_at == 3).mean():.1%}, "
          f"after 4: {(stopped_at == 4).mean():.1%}")

    slow = [(name, ours, theirs) for (name, _, ours, _), (_, _, theirs, _) in zip(rows[::2], rows[1::2])
            if ours > theirs * args.slack]
    for name, ours, theirs in slow:
        print(f"FAIL: our {name} took {ours:.3f} s, crowd-kit's {theirs:.3f} s", file=sys.stderr)
    print("ok: ours is not slower than crowd-kit's" if not slow else "not ok")
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
