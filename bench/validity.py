"""Benchmark: the planted effects, seed by seed -- does each method find what the benchmark planted?

For each seed the built-in benchmark is generated anew and its models trained anew with that seed
(the demo's quick profile, :data:`demo.profile.QUICK`; checkpoints cached under ``--work`` by config
and code version), then each method runs (``bench/validity_effects.py``) and the table prints one
row per seed, one column per effect, ``yes``/``no`` with the numbers behind it:

* ``salient``: per biased class (bg/wa/ob), robust-model features on the cue among its top 5 that the
  simulated crowd (5 workers, 85 % accurate, >= 3 spurious answers) labels spurious / features on the cue;
* ``spray_rank``: the watermark class's rank by tau (SpRAy variant, cues on 30 %; yes: top 3);
* ``spray_purity``: watermark share of its purest cluster (>= 10 images) at the eigengap k (yes: >= 0.95);
* ``unhans_free`` / ``unhans_cue``: B minus A accuracy on cue-free validation images and on the same
  images with the isolated artifact pasted on (yes: B above A), with the artifact mask's IoU
  (``--unhans-artifact planted``: the planted watermark instead of SpRAy's cluster, a diagnostic);
* ``recon_trigger``: per trigger level, share of the best reconstructions showing the trigger / share
  of noise candidates (yes: :func:`analysis.reconstruction.effects.planted_effects`' criterion);
* ``recon_l1_acc``: clean test accuracy per model (yes: L1 below base, L2 and L3);
* ``misclass``: per model, rectified share of top-1 mistakes on the flipped split / mistakes vs the same
  on the test split (yes: flipped above clean for both models);
* ``prototypes``: planted-cue share among Adv / MMD-critic criticisms < prototypes, biased classes pooled.

The last line: ``planted effects found: K of N`` (seeds x effects run).

    .venv/bin/python bench/validity.py                        # 10 seeds, every effect (hours on 2 cores)
    .venv/bin/python bench/validity.py --seeds 0 1 2 --effects misclassification prototypes --out t.csv
    .venv/bin/python bench/validity.py --merge t.csv u.csv     # one table of runs of other effects
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.validity_effects import EFFECTS, UNHANS_ARTIFACTS, Outcome, SeedInputs  # noqa: E402


def columns(effects: Iterable[str]) -> list[str]:
    """The table's effect columns for these effect groups, in table order."""
    chosen = set(effects)
    return [col for name, (_, cols) in EFFECTS.items() if name in chosen for col in cols]


def run_seed(seed: int, effects: Sequence[str], work_dir: Path, log=print,
             flavours: Sequence[str] = ("standard", "robust"), unhans_artifact: str = "spray") -> dict[str, Outcome]:
    """Every chosen effect group on one seed; a group that fails counts as not found, with its error; an effect
    that needs a model outside ``flavours`` leaves its cell empty (not run). A missing Fashion-MNIST is the
    machine's fault, not a method's miss: it stops the run."""
    from analysis.datasets.fashion_mnist import FashionMNISTNotFoundError

    inputs = SeedInputs(seed, work_dir, flavours=tuple(flavours), unhans_artifact=unhans_artifact)
    row: dict[str, Outcome] = {}
    for name in effects:
        fn, cols = EFFECTS[name]
        started = time.monotonic()
        try:
            row.update(fn(inputs))
        except FashionMNISTNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - a crash is a miss, reported with its cause
            row.update({col: Outcome(False, f"error: {type(exc).__name__}: {exc}"[:80]) for col in cols})
        log(f"  seed {seed} {name}: {time.monotonic() - started:.0f}s  "
            + "  ".join(f"{c}={cell(row.get(c))}" for c in cols))
    return row


def cell(outcome: Outcome | None) -> str:
    return "-" if outcome is None else f"{'yes' if outcome.found else 'no'} ({outcome.detail})"


def format_table(rows: Mapping[int, Mapping[str, Outcome]], cols: Sequence[str]) -> str:
    """One row per seed, one column per effect, then per effect the seeds found, and the last line
    ``planted effects found: K of N`` over the cells that ran."""
    body = [["seed", *cols]] + [[str(seed), *(cell(row.get(c)) for c in cols)] for seed, row in rows.items()]
    found = {c: sum(row[c].found for row in rows.values() if c in row) for c in cols}
    ran = {c: sum(c in row for row in rows.values()) for c in cols}
    body.append(["found", *(f"{found[c]} of {ran[c]}" for c in cols)])
    widths = [max(len(r[i]) for r in body) for i in range(len(body[0]))]
    lines = ["  ".join(text.ljust(w) for text, w in zip(r, widths)).rstrip() for r in body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"planted effects found: {sum(found.values())} of {sum(ran.values())}")
    return "\n".join(lines)


def write_csv(path: Path, rows: Mapping[int, Mapping[str, Outcome]], cols: Sequence[str]) -> None:
    """The table as CSV: per seed and effect ``<effect>`` (1/0, empty when not run) and ``<effect>_detail``."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["seed", *(f"{c}{suffix}" for c in cols for suffix in ("", "_detail"))])
        for seed, row in rows.items():
            writer.writerow([seed, *(v for c in cols for v in (
                ("", "") if c not in row else (int(row[c].found), row[c].detail)))])


def read_csv(paths: Iterable[Path]) -> tuple[dict[int, dict[str, Outcome]], list[str]]:
    """Rows of tables written by :func:`write_csv` (e.g. by runs of different effects on the same seeds), merged
    per seed, and their columns in table order."""
    rows: dict[int, dict[str, Outcome]] = {}
    for path in paths:
        with Path(path).open(newline="") as handle:
            records = list(csv.DictReader(handle))
        for record in records:
            row = rows.setdefault(int(record["seed"]), {})
            for key, value in record.items():
                if key != "seed" and not key.endswith("_detail") and value != "":
                    row[key] = Outcome(value == "1", record[f"{key}_detail"])
    ran = {c for row in rows.values() for c in row}
    return dict(sorted(rows.items())), [c for c in columns(EFFECTS) if c in ran]


def machine_kernels() -> str:
    """The CPU and the vector ISA torch's kernels use here, e.g. ``Intel(R) Xeon(R) Processor, torch CPU capability
    AVX512``: the same seed trains other weights under another ISA or cache layout."""
    import platform

    import torch

    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    return f"{model}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}"


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--effects", nargs="+", choices=list(EFFECTS), default=list(EFFECTS))
    parser.add_argument("--out", type=Path, help="write the table as CSV here")
    parser.add_argument("--work", type=Path, help="benchmarks and checkpoints (default: a temporary directory)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads outside training")
    parser.add_argument("--flavours", nargs="+", choices=["standard", "robust"], default=["standard", "robust"],
                        help="demo models to train (without robust: no Salient cell, no robust misclassification)")
    parser.add_argument("--merge", type=Path, nargs="+", help="print the table of these CSVs (merged) and stop")
    parser.add_argument("--unhans-artifact", choices=UNHANS_ARTIFACTS, default="spray",
                        help="un-Hans pastes SpRAy's isolated artifact (default) or the planted watermark itself "
                             "(a diagnostic of the un-Hans protocol alone)")
    args = parser.parse_args(argv)
    if args.merge:
        print(format_table(*read_csv(args.merge)))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    # The figures depend on the CPU's kernels (the README, "Another CPU, other figures"): the table says which.
    print(f"kernels: {machine_kernels()}", flush=True)
    if args.unhans_artifact == "planted" and "unhans" in args.effects:
        print("un-Hans artifact: the planted watermark (a diagnostic: SpRAy's isolation left out)", flush=True)
    effects = [e for e in EFFECTS if e in args.effects]
    cols = columns(effects)
    rows: dict[int, dict[str, Outcome]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for seed in args.seeds:
            started = time.monotonic()
            print(f"seed {seed}: benchmark, models and {', '.join(effects)}", flush=True)
            rows[seed] = run_seed(seed, effects, work, log=lambda line: print(line, flush=True),
                                  flavours=args.flavours, unhans_artifact=args.unhans_artifact)
            print(f"seed {seed} done in {time.monotonic() - started:.0f}s", flush=True)
            if args.out:
                write_csv(args.out, rows, cols)
    print()
    print(format_table(rows, cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
