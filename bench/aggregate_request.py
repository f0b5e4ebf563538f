"""Benchmark: the Aggregate button's request with a broker (it queues the job) against the job itself (what the
request used to run: majority vote, Dawid-Skene, agreement, one result row per task), on PostgreSQL; then the
answers.csv download (still made in the request) and the archive job (which used to be).

Makes a scratch database (dropped at the end) and, per size, a closed image-choice study of that many tasks with
3 bulk-inserted answers each. The broker is Celery's in-memory transport, so the message waits as it would in Redis.

    .venv/bin/python bench/aggregate_request.py --sizes 2000 10000
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_scale import bench_researcher, make_study  # noqa: E402
from scratch import ADMIN_URL, scratch_database  # noqa: E402

DB_NAME = "salient_bench_aggregate"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    args = parser.parse_args()
    with scratch_database(args.admin_url, DB_NAME):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from django.urls import reverse

        from annotation import services
        from annotation.models import Job, Study
        from annotation.reports.archive_job import study_run_export
        from workers.celery import app

        owner, workers, client = bench_researcher()
        app.conf.task_always_eager = False  # a broker holds the job's message; no worker takes it here
        print(f"PostgreSQL scratch db {DB_NAME}; {os.cpu_count()} CPUs; one run each\n")
        print(f"{'tasks':>7} {'answers':>8} {'request s':>10} {'queries':>8} {'job s':>8} {'job state':>10} "
              f"{'answers.csv s':>14} {'archive job s':>14} {'archive MB':>11}")
        for size in args.sizes:
            study = make_study(owner, size, workers)
            Study.objects.filter(pk=study.pk).update(state=Study.State.CLOSED)
            url = reverse("study_action", args=[study.pk, "aggregate"])
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                reply = client.post(url, HTTP_ACCEPT="application/json")
                request = time.perf_counter() - started
            queries = len(captured)  # now: Django keeps only the last 9000 queries of a connection
            assert reply.status_code == 200 and reply.json()["job"]["state"] == "pending", reply.content[:300]
            job = Job.objects.select_related("study").get(pk=reply.json()["job"]["id"])
            started = time.perf_counter()
            services.study_run_aggregation(job=job)
            ran = time.perf_counter() - started
            job.refresh_from_db()
            started = time.perf_counter()
            assert client.get(reverse("study_export", args=[study.pk, "answers.csv"])).status_code == 200
            csv_seconds = time.perf_counter() - started
            export = Job.objects.create(study=study, name="export", params={"file": "archive.zip"})
            started = time.perf_counter()
            study_run_export(job=Job.objects.select_related("study").get(pk=export.pk))
            archive_seconds = time.perf_counter() - started
            export = Job.objects.select_related("artifact").get(pk=export.pk)
            print(f"{size:>7} {3 * size:>8} {request:>10.3f} {queries:>8} {ran:>8.2f} {job.state:>10} "
                  f"{csv_seconds:>14.2f} {archive_seconds:>14.2f} {export.artifact.size / 1e6:>11.2f}")


if __name__ == "__main__":
    main()
