"""Benchmark: seconds to import an MTurk batch-results file (``import_answers --format mturk``) by size.

Makes a scratch PostgreSQL database (dropped at the end), writes feature_panel batch files in the published
format (every column of MTurk's batch-results download; 5 assignments per HIT, assignments spread over
``--workers`` workers, 265 as in the paper's public answers file; one in 100 Rejected; confidences written
as ``4.0``) and imports each into a new study through the command, timing the whole command (CSV read,
checks, bulk inserts). The anchor is a plain ``csv.DictReader`` read of the same file in the same run.
The last line is ``import: N rows in S s (R rows/s); plain csv read A s``, of the largest file.

    .venv/bin/python bench/import_mturk.py                    # PostgreSQL on 127.0.0.1:5432, user postgres
    .venv/bin/python bench/import_mturk.py --sizes 1000 25000
    .venv/bin/python bench/import_mturk.py --sizes 25000 --profile   # cProfile of the largest import
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch import ADMIN_URL, scratch_database  # noqa: E402

DB_NAME = "salient_bench_import"
MAIN = ["main_object", "separate_object", "background"]


#: The columns of MTurk's batch-results download, in its order; Input.* and Answer.* follow.
HEADER = ["HITId", "HITTypeId", "Title", "Description", "Keywords", "Reward", "CreationTime", "MaxAssignments",
          "RequesterAnnotation", "AssignmentDurationInSeconds", "AutoApprovalDelayInSeconds", "Expiration",
          "NumberOfSimilarHITs", "LifetimeInSeconds", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime",
          "SubmitTime", "AutoApprovalTime", "ApprovalTime", "RejectionTime", "RequesterFeedback",
          "WorkTimeInSeconds", "LifetimeApprovalRate", "Last30DaysApprovalRate", "Last7DaysApprovalRate",
          "Input.wnid", "Input.feature_index", "Answer.main", "Answer.confidence", "Answer.reason"]


def write_batch(path: Path, rows: int, workers: int = 265) -> None:
    created, accept, submit = ("Wed Nov 29 06:00:00 PST 2026", "Wed Nov 29 06:20:00 PST 2026",
                               "Wed Nov 29 06:21:30 PST 2026")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            hit, n = divmod(i, 5)
            rejected = i % 100 == 99
            writer.writerow([
                f"3X{hit:08d}", "3T1FEATUREPANEL", "Is the highlighted region part of the object?",
                "Look at a feature of a class", "image, feature", "$0.10", created, "5", "", "3600", "259200",
                "Wed Dec 06 06:00:00 PST 2026", "", "604800", f"3A{i:09d}", f"A{(5 * hit + n) % workers:05d}W",
                "Rejected" if rejected else "Approved", accept, submit, "Sat Dec 02 06:21:30 PST 2026",
                "" if rejected else "Thu Nov 30 06:21:30 PST 2026", "Thu Nov 30 06:21:30 PST 2026" if rejected else "",
                "", "90", "100% (12/12)", "100% (12/12)", "100% (12/12)", f"n{hit // 5:08d}", hit % 5,
                MAIN[(hit + n) % 3], f"{1 + i % 5}.0", "the sky behind it"])


def plain_read(path: Path) -> float:
    """Seconds to read every row of ``path`` with the standard library's csv module (the anchor)."""
    started = time.perf_counter()
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 25000])
    parser.add_argument("--workers", type=int, default=265)
    parser.add_argument("--database", default=DB_NAME, help="name of the scratch database (dropped at the end)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the largest import")
    args = parser.parse_args()
    with scratch_database(args.admin_url, args.database):
        from django.core.management import call_command

        print(f"PostgreSQL scratch db {args.database}; {os.cpu_count()} CPUs shared with PostgreSQL; "
              f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
        print(f"{'rows':>7} {'imported':>9} {'seconds':>8} {'rows/s':>8} {'csv read s':>11} {'x csv read':>11}")
        with tempfile.TemporaryDirectory() as tmp:
            for size in sorted(args.sizes):
                path = Path(tmp) / f"batch{size}.csv"
                write_batch(path, size, args.workers)
                anchor = plain_read(path)
                profiler = None
                if args.profile and size == max(args.sizes):
                    import cProfile

                    profiler = cProfile.Profile()
                    profiler.enable()
                started = time.perf_counter()
                call_command("import_answers", str(path), "--format", "mturk", "--kind", "feature_panel",
                             "--name", f"bench{size}", stdout=open(os.devnull, "w"))
                seconds = time.perf_counter() - started
                if profiler is not None:
                    profiler.disable()
                imported = size - size // 100
                print(f"{size:>7} {imported:>9} {seconds:>8.2f} {size / seconds:>8.0f} {anchor:>11.3f} "
                      f"{seconds / anchor:>11.1f}", flush=True)
        print(f"import: {size} rows in {seconds:.1f} s ({size / seconds:.0f} rows/s); plain csv read {anchor:.2f} s")
        if profiler is not None:
            import pstats

            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
