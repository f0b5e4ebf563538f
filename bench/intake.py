"""Benchmark: answers/s the HTTP submit endpoint sustains against PostgreSQL, then a loss/duplicate check.

Loopback only and bounded. The script makes a scratch database (dropped at the end), migrates it,
creates a live study with ``--tasks`` tasks x 5 wanted answers and pre-claims every slot for
``--workers`` workers (so the run measures the submit, not the claim). It starts ``--servers``
``manage.py runserver`` processes on 127.0.0.1 and, for each concurrency level, lets that many
client processes POST answers to the token-authenticated submit endpoint (``/ext/a/<id>/``), each
also replaying some answers (which must be refused with 409). Afterwards it checks in the database
that every accepted answer is stored exactly once and nothing else is.

    .venv/bin/python bench/intake.py                       # PostgreSQL on 127.0.0.1:5432, user postgres
    .venv/bin/python bench/intake.py --levels 4 16 --answers 1000
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "salient_bench_intake"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_sql(admin_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)


def setup_django(db_url: str) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ.pop("CELERY_BROKER_URL", None)  # jobs run eagerly in this process
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def make_study(tasks: int, workers: int, wanted: int = 5):
    """A live internal study with ``tasks`` tasks; returns its id."""
    from annotation import services
    from annotation.models import Task

    owner = services.researcher_create(username="bench", password="bench-password-1")
    study = services.study_create(owner=owner, name=f"intake {time.time():.0f}", kind="image_choice",
                                  settings={"images": ["astronaut"], "image_size": 32}, workers_per_task=wanted)
    services.study_start_computing(study=study)  # eager: the evidence job runs here
    study.refresh_from_db()
    first = study.tasks.get()
    Task.objects.bulk_create([Task(study=study, key=f"bench-{i}", payload=first.payload, truth=first.truth,
                                   wanted=wanted) for i in range(tasks - 1)])
    services.study_launch(study=study)
    return study.pk


def claim_slots(study_id: int, workers: int, answers: int, offset: int) -> list[tuple[int, str, int]]:
    """Bulk-assign ``answers`` slots to workers (never one task twice per worker); (id, token, task)."""
    import datetime as dt

    from django.db.models import F
    from django.utils import timezone

    from annotation.models import Assignment, Task, Worker
    from annotation.tokens import assignment_token

    pool = list(Worker.objects.filter(external_id__startswith="bench-").order_by("id"))
    if len(pool) < workers:
        pool += Worker.objects.bulk_create([Worker(backend="internal", external_id=f"bench-{i}")
                                            for i in range(len(pool), workers)])
    tasks = list(Task.objects.filter(study_id=study_id, filled__lt=F("wanted")).order_by("id"))
    rows, expires = [], timezone.now() + dt.timedelta(hours=2)
    slot = offset
    for task in tasks:
        free = task.wanted - task.filled
        for _ in range(free):
            if len(rows) == answers:
                break
            rows.append(Assignment(task=task, worker=pool[slot % workers], expires_at=expires))
            slot += 1
        if len(rows) == answers:
            break
    made = Assignment.objects.bulk_create(rows)
    for task_id in {a.task_id for a in made}:
        Task.objects.filter(pk=task_id).update(filled=Assignment.objects.filter(task_id=task_id).count())
    return [(a.pk, assignment_token(a), a.task_id) for a in made]


def client_run(args: tuple[list[str], list[tuple[int, str, int]], float, int]) -> dict:
    """One client process: POST each answer once (and replay every ``replay_every``-th one)."""
    import requests

    bases, items, deadline, replay_every = args
    http = requests.Session()
    latencies, codes, accepted, replays = [], {}, [], {}
    for i, (pk, token, _) in enumerate(items):
        if time.monotonic() > deadline:
            break
        base = bases[i % len(bases)]
        data = {"token": token, "choice": "person", "reason": "bench", "confidence": "3"}
        start = time.perf_counter()
        reply = http.post(f"{base}/ext/a/{pk}/", data=data, timeout=60, allow_redirects=False)
        latencies.append(time.perf_counter() - start)
        codes[reply.status_code] = codes.get(reply.status_code, 0) + 1
        if reply.status_code == 200:
            accepted.append(pk)
        if replay_every and i % replay_every == 0:
            again = http.post(f"{base}/ext/a/{pk}/", data=data, timeout=60, allow_redirects=False)
            replays[again.status_code] = replays.get(again.status_code, 0) + 1
    return {"latencies": latencies, "codes": codes, "accepted": accepted, "replays": replays}


def run_level(bases: list[str], items: list, clients: int, seconds: float, replay_every: int) -> dict:
    chunks = [items[i::clients] for i in range(clients)]
    deadline = time.monotonic() + seconds
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(clients) as pool:
        results = pool.map(client_run, [(bases, chunk, deadline, replay_every) for chunk in chunks])
    wall = time.perf_counter() - start
    latencies = sorted(x for r in results for x in r["latencies"])
    codes: dict[int, int] = {}
    replays: dict[int, int] = {}
    for r in results:
        for k, v in r["codes"].items():
            codes[k] = codes.get(k, 0) + v
        for k, v in r["replays"].items():
            replays[k] = replays.get(k, 0) + v
    accepted = [pk for r in results for pk in r["accepted"]]
    return {"wall": wall, "latencies": latencies, "codes": codes, "replays": replays, "accepted": accepted}


def check(study_id: int, accepted: list[int]) -> list[str]:
    """Every accepted answer stored exactly once, nothing else stored, counters consistent."""
    from django.db.models import Count

    from annotation.models import Answer, Task

    problems = []
    stored = list(Answer.objects.filter(task__study_id=study_id).values_list("assignment_id", flat=True))
    if len(stored) != len(set(stored)):
        problems.append("an assignment has two answers")
    if sorted(stored) != sorted(accepted):
        lost = set(accepted) - set(stored)
        extra = set(stored) - set(accepted)
        problems.append(f"{len(lost)} accepted answers lost, {len(extra)} stored without an accepted reply")
    pairs = Answer.objects.filter(task__study_id=study_id).values("worker", "task").annotate(n=Count("id"))
    if any(p["n"] > 1 for p in pairs):
        problems.append("a worker answered a task twice")
    per_task = dict(Answer.objects.filter(task__study_id=study_id).values_list("task").annotate(n=Count("id")))
    for task in Task.objects.filter(study_id=study_id):
        if task.approved != per_task.get(task.pk, 0) or task.approved > task.wanted:
            problems.append(f"task {task.pk}: approved {task.approved}, answers {per_task.get(task.pk, 0)}")
            break
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--levels", type=int, nargs="+", default=[4, 16, 48], help="concurrent clients per run")
    parser.add_argument("--answers", type=int, default=3000, help="answers offered per level")
    parser.add_argument("--seconds", type=float, default=60.0, help="longest a level may run")
    parser.add_argument("--servers", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--replay-every", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)

    base_url = args.admin_url.rsplit("/", 1)[0]
    db_url = f"{base_url}/{DB_NAME}"
    admin_sql(args.admin_url, f"DROP DATABASE IF EXISTS {DB_NAME}")
    admin_sql(args.admin_url, f"CREATE DATABASE {DB_NAME}")
    env = {**os.environ, "DATABASE_URL": db_url, "DEBUG": "0", "LOG_LEVEL": "ERROR"}
    env.pop("CELERY_BROKER_URL", None)
    servers = []
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        setup_django(db_url)
        total = args.answers * len(args.levels)
        study_id = make_study(tasks=(total + 4) // 5, workers=args.workers)
        ports = [free_port() for _ in range(args.servers)]
        for port in ports:
            servers.append(subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        _wait_up(bases)
        print(f"PostgreSQL scratch db {DB_NAME}; {args.servers} runserver processes on 127.0.0.1; "
              f"{os.cpu_count()} CPUs; {args.answers} answers per level, replay every {args.replay_every}th")
        print(f"{'clients':>8}{'answers':>9}{'seconds':>9}{'answers/s':>11}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
              f"{'non-200':>9}{'replays 409':>13}")
        accepted_all: list[int] = []
        ok = True
        for i, clients in enumerate(args.levels):
            items = claim_slots(study_id, args.workers, args.answers, offset=i * args.answers)
            result = run_level(bases, items, clients, args.seconds, args.replay_every)
            accepted_all += result["accepted"]
            lat = result["latencies"]
            n = len(result["accepted"])
            q = (lambda f: 1000 * lat[min(len(lat) - 1, int(f * len(lat)))]) if lat else (lambda f: float("nan"))
            bad = sum(v for k, v in result["codes"].items() if k != 200)
            replays = result["replays"]
            print(f"{clients:>8}{n:>9}{result['wall']:>9.2f}{n / result['wall']:>11.1f}{q(0.5):>9.1f}{q(0.95):>9.1f}"
                  f"{q(0.99):>9.1f}{bad:>9}{replays.get(409, 0):>7}/{sum(replays.values()):<5}")
            ok &= bad == 0 and replays.get(409, 0) == sum(replays.values())
        problems = check(study_id, accepted_all)
        for p in problems:
            print("FAIL:", p)
        print(f"check: {len(accepted_all)} accepted answers, each stored exactly once: "
              f"{'ok' if not problems else 'NOT OK'}")
        return 0 if ok and not problems else 1
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        from django.db import connections

        connections.close_all()
        if not args.keep:
            admin_sql(args.admin_url, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def _wait_up(bases: list[str], timeout: float = 60.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    for base in bases:
        while True:
            try:
                requests.get(f"{base}/accounts/login/", timeout=5)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server {base} did not start") from None
                time.sleep(0.3)


if __name__ == "__main__":
    raise SystemExit(main())
