"""Benchmark: the study dashboard and its 3-second progress poll as the study grows (PostgreSQL).

Makes a scratch database (dropped at the end) and, for each size, a live image-choice study of that many
tasks with 3 answers each (bulk-inserted), then times the dashboard page and the poll (the 50 task rows on
screen) through Django's test client, median of ``--repeats``, and counts their SQL queries. The anchor is
the smallest study in the same run.

    .venv/bin/python bench/dashboard_scale.py                     # sizes 200 2000 20000
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch import ADMIN_URL, scratch_database  # noqa: E402

DB_NAME = "salient_bench_dashboard"


def make_study(owner, size: int, workers):
    from django.utils import timezone

    from annotation import services
    from annotation.models import Answer, Assignment, Study, Task

    study = services.study_create(owner=owner, name=f"scale{size}", kind="image_choice", workers_per_task=3)
    Study.objects.filter(pk=study.pk).update(state=Study.State.LIVE)
    tasks = Task.objects.bulk_create([Task(study=study, key=f"t{i:06d}", payload={}, wanted=3, filled=3, approved=3)
                                      for i in range(size)], batch_size=5000)
    now = timezone.now()
    assignments = Assignment.objects.bulk_create([
        Assignment(task=t, worker=w, state="approved", expires_at=now, shown_at=now, submitted_at=now)
        for t in tasks for w in workers], batch_size=5000)
    Answer.objects.bulk_create([
        Answer(assignment=a, task_id=a.task_id, worker_id=a.worker_id, shown_at=now, submitted_at=now,
               payload={"choice": "person", "reason": "", "confidence": 3}) for a in assignments], batch_size=5000)
    return study


def bench_researcher():
    """(researcher, 3 imported workers, a test client signed in as the researcher) in the scratch database."""
    from django.test import Client
    from django.test.utils import setup_test_environment

    from annotation import services
    from annotation.models import Worker

    setup_test_environment()
    owner = services.researcher_create(username="bench", password=None)
    workers = [Worker.objects.create(backend="imported", external_id=f"W{i}") for i in range(3)]
    client = Client()
    client.force_login(owner)
    return owner, workers, client


def show_queries(client, study) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    ids = ",".join(str(t) for t in study.tasks.order_by("id").values_list("pk", flat=True)[:50])
    for url in (reverse("study_progress", args=[study.pk]) + f"?tasks={ids}", reverse("study_detail", args=[study.pk])):
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        for q in sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:4]:
            print(f"  {q['time']} s  {q['sql'][:300]}")


def timed(client, url: str, repeats: int) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    seconds = []
    for _ in range(repeats):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            reply = client.get(url)
            if hasattr(reply, "content"):
                _ = reply.content
            seconds.append(time.perf_counter() - started)
        assert reply.status_code == 200, reply.status_code
    return statistics.median(seconds), len(captured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000, 20000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--analyze", action="store_true", help="ANALYZE the tables after the bulk inserts")
    parser.add_argument("--show-queries", action="store_true", help="print each query's time of one poll")
    args = parser.parse_args()
    with scratch_database(args.admin_url, DB_NAME):
        from django.urls import reverse

        owner, workers, client = bench_researcher()
        print(f"PostgreSQL scratch db {DB_NAME}; {os.cpu_count()} CPUs; median of {args.repeats}\n")
        print(f"{'tasks':>7} {'page s':>8} {'queries':>8} {'poll s':>8} {'queries':>8} {'page vs anchor':>15} "
              f"{'poll vs anchor':>15}")
        anchor = None
        for size in args.sizes:
            study = make_study(owner, size, workers)
            if args.analyze:
                from django.db import connection

                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE")
            if args.show_queries:
                show_queries(client, study)
            ids = ",".join(str(t) for t in study.tasks.order_by("id").values_list("pk", flat=True)[:50])
            page, page_q = timed(client, reverse("study_detail", args=[study.pk]), args.repeats)
            poll, poll_q = timed(client, reverse("study_progress", args=[study.pk]) + f"?tasks={ids}", args.repeats)
            anchor = anchor or (page, poll)
            print(f"{size:>7} {page:>8.3f} {page_q:>8} {poll:>8.4f} {poll_q:>8} {page / anchor[0]:>15.2f} "
                  f"{poll / anchor[1]:>15.2f}")


if __name__ == "__main__":
    main()
