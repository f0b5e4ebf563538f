"""Benchmark: seconds to import an MTurk batch-results file (``import_answers --format mturk``) by size.

Makes a scratch PostgreSQL database (dropped at the end), writes feature_panel batch files of 5
assignments per HIT (one in ten Rejected, confidences written as ``4.0``) and imports each into a new
study through the command, timing the whole command (CSV read, checks, bulk inserts). The anchor is the
smallest file in the same run: the last column is the time per row relative to it (1.0 = linear).

    .venv/bin/python bench/import_mturk.py                    # PostgreSQL on 127.0.0.1:5432, user postgres
    .venv/bin/python bench/import_mturk.py --sizes 1000 25000
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


def write_batch(path: Path, rows: int) -> None:
    header = ["HITId", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime", "SubmitTime",
              "WorkTimeInSeconds", "Input.wnid", "Input.feature_index", "Answer.main", "Answer.confidence",
              "Answer.reason"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(rows):
            hit, n = divmod(i, 5)
            writer.writerow([f"H{hit}", f"A{i}", f"W{(hit + n * 7) % 400}", "Rejected" if i % 10 == 9 else "Approved",
                             "Wed Nov 29 06:20:00 PST 2026", "Wed Nov 29 06:21:30 PST 2026", "90",
                             f"n{hit // 20:05d}", hit % 20, MAIN[(hit + n) % 3], f"{1 + i % 5}.0", "sky behind it"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 25000])
    args = parser.parse_args()
    with scratch_database(args.admin_url, DB_NAME):
        from django.core.management import call_command

        print(f"PostgreSQL scratch db {DB_NAME}; {os.cpu_count()} CPUs shared with PostgreSQL\n")
        print(f"{'rows':>7} {'imported':>9} {'seconds':>8} {'rows/s':>8} {'time/row vs anchor':>19}")
        anchor = None
        with tempfile.TemporaryDirectory() as tmp:
            for size in args.sizes:
                path = Path(tmp) / f"batch{size}.csv"
                write_batch(path, size)
                started = time.perf_counter()
                call_command("import_answers", str(path), "--format", "mturk", "--kind", "feature_panel",
                             "--name", f"bench{size}", stdout=open(os.devnull, "w"))
                seconds = time.perf_counter() - started
                per_row = seconds / size
                anchor = anchor or per_row
                print(f"{size:>7} {size - size // 10:>9} {seconds:>8.2f} {size / seconds:>8.0f} "
                      f"{per_row / anchor:>19.2f}")


if __name__ == "__main__":
    main()
