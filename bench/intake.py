"""Benchmark: answers/s the HTTP submit endpoint sustains against PostgreSQL, then a loss/duplicate check.

Loopback only and bounded. The script makes a scratch database (dropped at the end), migrates it,
creates a live study with 5 wanted answers per task and pre-claims the slots for ``--workers`` workers
(so the run measures the submit, not the claim). It serves the site with gunicorn as ``make serve``
does (``studio/gunicorn_config.py``, ``--web-concurrency`` workers x ``--threads`` threads, DEBUG=0)
and, for each concurrency level, lets that many clients (threads with keep-alive connections, spread
over a few processes) POST answers to the token-authenticated submit endpoint (``/ext/a/<id>/``) for at
most ``--seconds``, each also replaying some answers (which must be refused with 409). The anchor is
the earlier submit path measured in the same run on the same server: the study row locked FOR UPDATE by
every answer (``SALIENT_INTAKE_STUDY_LOCK=1``, see ``annotation/services/intake.py``) at
``--anchor-clients`` clients. Afterwards it checks in the database that every accepted answer is
stored exactly once and nothing else is, and ends with the line
``intake: N answers/s at 64 clients, p95 M ms; anchor A answers/s``. ``--profile N`` instead profiles N
submissions in-process (``--study-lock``: of the earlier path).

    .venv/bin/python bench/intake.py                       # PostgreSQL on 127.0.0.1:5432, user postgres
    .venv/bin/python bench/intake.py --levels 16 64 200 --seconds 10
    .venv/bin/python bench/intake.py --profile 300 [--study-lock]
"""
from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "salient_bench_intake"
ANSWER = {"choice": "person", "reason": "bench", "confidence": "3"}


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
    from workers.celery import run_jobs_in_process_without_a_broker

    run_jobs_in_process_without_a_broker()  # a script, not a request: the evidence job runs here
    owner = services.researcher_create(username="bench", password="bench-password-1")
    study = services.study_create(owner=owner, name=f"intake {time.time():.0f}", kind="image_choice",
                                  settings={"images": ["astronaut"], "image_size": 32}, workers_per_task=wanted)
    services.study_start_computing(study=study)
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
        pool += Worker.objects.bulk_create([Worker(backend="prolific", external_id=f"bench-{i}")
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


def post_answer(conn: http.client.HTTPConnection, pk: int, token: str) -> int:
    """POST the bench answer of assignment ``pk`` with its token over ``conn``; the reply's status."""
    body = urlencode({"token": token, **ANSWER})
    conn.request("POST", f"/ext/a/{pk}/", body=body,
                 headers={"Content-Type": "application/x-www-form-urlencoded", "Connection": "keep-alive"})
    reply = conn.getresponse()
    reply.read()
    return reply.status


def _client_thread(base: str, items: list, deadline: float, replay_every: int, out: dict) -> None:
    """One client: POST each answer once over one keep-alive connection (and replay some)."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    for i, (pk, token, _) in enumerate(items):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        try:
            status = post_answer(conn, pk, token)
        except (ConnectionError, http.client.HTTPException, TimeoutError):
            conn.close()
            status = 599
        out["latencies"].append(time.perf_counter() - start)
        out["codes"][status] = out["codes"].get(status, 0) + 1
        if status == 200:
            out["accepted"].append(pk)
        if replay_every and i % replay_every == 0:
            try:
                again = post_answer(conn, pk, token)
            except (ConnectionError, http.client.HTTPException, TimeoutError):
                conn.close()
                again = 599
            out["replays"][again] = out["replays"].get(again, 0) + 1
    conn.close()


def client_run(args: tuple[list[str], list[list], float, int]) -> dict:
    """One client process: a thread per client (list of items)."""
    bases, chunks, deadline, replay_every = args
    outs = [{"latencies": [], "codes": {}, "accepted": [], "replays": {}} for _ in chunks]
    threads = [threading.Thread(target=_client_thread, args=(bases[i % len(bases)], chunk, deadline, replay_every, out))
               for i, (chunk, out) in enumerate(zip(chunks, outs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": [x for o in outs for x in o["latencies"]],
            "accepted": [x for o in outs for x in o["accepted"]],
            "codes": _merge(o["codes"] for o in outs), "replays": _merge(o["replays"] for o in outs)}


def _merge(counts) -> dict[int, int]:
    total: dict[int, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return total


def run_level(bases: list[str], items: list, clients: int, seconds: float, replay_every: int,
              processes: int) -> dict:
    chunks = [items[i::clients] for i in range(clients)]
    processes = max(1, min(processes, clients))
    deadline = time.monotonic() + seconds
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(processes) as pool:
        results = pool.map(client_run, [(bases, chunks[p::processes], deadline, replay_every)
                                        for p in range(processes)])
    wall = time.perf_counter() - start
    return {"wall": wall, "latencies": sorted(x for r in results for x in r["latencies"]),
            "codes": _merge(r["codes"] for r in results), "replays": _merge(r["replays"] for r in results),
            "accepted": [pk for r in results for pk in r["accepted"]]}


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


def start_gunicorn(port: int, workers: int, threads: int, env: dict, log=None) -> subprocess.Popen:
    """``make serve``'s gunicorn on ``port``; its output goes to the open file ``log`` (default: nowhere)."""
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers),
           "GUNICORN_THREADS": str(threads)}
    out = log or subprocess.DEVNULL
    return subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", "studio/gunicorn_config.py",
                             "studio.wsgi"], cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)


def stop(servers: list[subprocess.Popen]) -> None:
    """Stop each server and everything it started (its own process group: a master stopped while its workers
    still boot would leave them running)."""
    for server in servers:
        _signal_group(server, signal.SIGTERM)
    for server in servers:
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _signal_group(server, signal.SIGKILL)
            server.wait(timeout=15)
        _signal_group(server, signal.SIGKILL)  # workers left behind by the master


def _signal_group(server: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(server.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _backend_cpu_seconds() -> float:
    """CPU seconds (user + system) the PostgreSQL backend of this process's connection has used (``/proc``)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile_submissions(study_id: int, workers: int, n: int) -> None:
    """Time, then cProfile, ``n`` submissions each through the whole Django stack in this process (no HTTP)."""
    import cProfile
    import pstats

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    items = claim_slots(study_id, workers, 2 * n + 20, offset=0)
    client = Client(HTTP_HOST="localhost")

    def submit(batch) -> None:
        for pk, token, _ in batch:
            assert client.post(f"/ext/a/{pk}/", {"token": token, **ANSWER}).status_code == 200

    submit(items[:20])  # warm up
    backend = _backend_cpu_seconds()
    with CaptureQueriesContext(connection) as queries:
        start, cpu = time.perf_counter(), time.process_time()
        submit(items[20:20 + n])
        plain, cpu = (time.perf_counter() - start) / n, (time.process_time() - cpu) / n
    backend = (_backend_cpu_seconds() - backend) / n
    print(f"{n} submissions in-process, not profiled: {1000 * plain:.1f} ms each, of which CPU {1000 * cpu:.2f} ms "
          f"in this process and {1000 * backend:.2f} ms in its PostgreSQL backend; "
          f"{len(queries) / n:.1f} SQL statements each; those of the first:")
    for q in queries.captured_queries[:round(len(queries) / n)]:
        print(f"  {q['time']:>6} s  {q['sql'][:110]}")
    profiler = cProfile.Profile()
    profiler.enable()
    submit(items[20 + n:])
    profiler.disable()
    stats = pstats.Stats(profiler).sort_stats("cumulative")
    stats.print_stats(25)
    stats.print_callees(r"task_page|assignment_submit|_approve")
    stats.sort_stats("tottime").print_stats(12)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--levels", type=int, nargs="+", default=[16, 64], help="concurrent clients per run")
    parser.add_argument("--answers", type=int, default=30000, help="answers offered per level (at most)")
    parser.add_argument("--seconds", type=float, default=60.0, help="longest a level may run")
    parser.add_argument("--web-concurrency", type=int, default=2 * (os.cpu_count() or 1) + 1, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--client-processes", type=int, default=2, help="processes the client threads share")
    parser.add_argument("--anchor-clients", type=int, default=64,
                        help="clients of the anchor, the earlier submit path with its study-wide lock (0: none)")
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--replay-every", type=int, default=20)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile N submissions in-process, no HTTP")
    parser.add_argument("--study-lock", action="store_true", help="--profile the earlier path (study row locked)")
    parser.add_argument("--cache-url", default=os.environ.get("CACHE_URL", ""),
                        help="the servers' cache (rate-limit counters), e.g. redis://127.0.0.1:6379/4; "
                             "default: the file cache of a plain `make serve`")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--database", default=DB_NAME, help="name of the scratch database (dropped at the end)")
    args = parser.parse_args(argv)

    base_url = args.admin_url.rsplit("/", 1)[0]
    db_name = args.database
    db_url = f"{base_url}/{db_name}"
    admin_sql(args.admin_url, f"DROP DATABASE IF EXISTS {db_name}")
    admin_sql(args.admin_url, f"CREATE DATABASE {db_name}")
    # Crowd-site workers (the /ext/ page takes their tokens only); the per-address answer limit is lifted:
    # every client comes from 127.0.0.1.
    env = {**os.environ, "DATABASE_URL": db_url, "DEBUG": "0", "LOG_LEVEL": "ERROR",
           "SALIENT_ANSWER_RATE": "1000000/s", "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(64)}
    env.pop("CELERY_BROKER_URL", None)
    env["CACHE_URL"] = args.cache_url
    if args.study_lock:
        env["SALIENT_INTAKE_STUDY_LOCK"] = os.environ["SALIENT_INTAKE_STUDY_LOCK"] = "1"
    os.environ["SECRET_KEY"] = env["SECRET_KEY"]  # this process signs the tokens the servers check
    os.environ["SALIENT_ANSWER_RATE"] = env["SALIENT_ANSWER_RATE"]  # --profile submits in this process,
    os.environ["CACHE_URL"] = env["CACHE_URL"]  # counting its rate limit in the servers' cache
    servers: list[subprocess.Popen] = []
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        setup_django(db_url)
        levels = ([args.anchor_clients] if args.anchor_clients else []) + args.levels
        study_id = make_study(tasks=(args.answers * len(levels) + 2 * args.profile + 24) // 5, workers=args.workers)
        if args.profile:
            profile_submissions(study_id, args.workers, args.profile)
            return 0
        print(f"PostgreSQL scratch db {db_name}; {os.cpu_count()} CPUs; clients, servers and PostgreSQL share them; "
              f"at most {args.answers} answers and {args.seconds:.0f} s per level, replay every {args.replay_every}th")
        print(f"{'server':<32}{'clients':>8}{'answers':>9}{'seconds':>9}{'answers/s':>11}{'x anchor':>10}"
              f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'non-200':>9}{'replays 409':>13}")
        accepted_all: list[int] = []
        ok, anchor_rate, offset = True, None, 0
        runs = ([("study lock", args.anchor_clients)] if args.anchor_clients else []) + [("", c) for c in args.levels]
        final = None
        for kind, clients in runs:
            ports = [free_port()]
            server_log = tempfile.TemporaryFile("w+")
            servers = [start_gunicorn(ports[0], args.web_concurrency, args.threads,
                                      {**env, "SALIENT_INTAKE_STUDY_LOCK": "1" if kind else "0"}, log=server_log)]
            label = f"gunicorn {args.web_concurrency}w x {args.threads}t{', ' + kind if kind else ''}"
            bases = [f"http://127.0.0.1:{p}" for p in ports]
            wait_up(bases, log=server_log)
            items = claim_slots(study_id, args.workers, args.answers, offset=offset)
            offset += args.answers
            result = run_level(bases, items, clients, args.seconds, args.replay_every, args.client_processes)
            stop(servers)
            servers = []
            accepted_all += result["accepted"]
            lat = result["latencies"]
            n = len(result["accepted"])
            rate = n / result["wall"]
            anchor_rate = anchor_rate or rate
            q = (lambda f: 1000 * lat[min(len(lat) - 1, int(f * len(lat)))]) if lat else (lambda f: float("nan"))
            bad = sum(v for k, v in result["codes"].items() if k != 200)
            replays = result["replays"]
            print(f"{label:<32}{clients:>8}{n:>9}{result['wall']:>9.2f}{rate:>11.1f}{rate / anchor_rate:>10.2f}"
                  f"{q(0.5):>9.1f}{q(0.95):>9.1f}{q(0.99):>9.1f}{bad:>9}"
                  f"{replays.get(409, 0):>7}/{sum(replays.values()):<5}",
                  flush=True)
            if bad:
                print(f"  non-200 replies: {dict(sorted(result['codes'].items()))}")
            if not kind and (final is None or clients == 64):
                final = (rate, clients, q(0.95))
            ok &= bad == 0 and replays.get(409, 0) == sum(replays.values())
        problems = check(study_id, accepted_all)
        for p in problems:
            print("FAIL:", p)
        print(f"check: {len(accepted_all)} accepted answers, each stored exactly once: "
              f"{'ok' if not problems else 'NOT OK'}")
        if final is not None:
            anchor = f"anchor {anchor_rate:.0f} answers/s" if args.anchor_clients else "no anchor"
            print(f"intake: {final[0]:.0f} answers/s at {final[1]} clients, p95 {final[2]:.0f} ms; {anchor}")
        return 0 if ok and not problems else 1
    finally:
        stop(servers)
        from django.db import connections

        connections.close_all()
        if not args.keep:
            admin_sql(args.admin_url, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


def wait_up(bases: list[str], timeout: float = 300.0, log=None) -> None:
    """Wait until every server answers ``/healthz`` with 200; if one does not, the error ends with the last lines
    the servers wrote to the open file ``log``."""
    deadline = time.monotonic() + timeout
    for base in bases:
        url = urlsplit(base)
        while True:
            try:
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except (ConnectionError, http.client.HTTPException, TimeoutError):
                pass
            if time.monotonic() > deadline:
                tail = ""
                if log is not None:
                    log.seek(0)
                    tail = "; its last output:\n" + "".join(log.readlines()[-20:])
                raise RuntimeError(f"server {base} did not answer /healthz in {timeout:.0f} s{tail}")
            time.sleep(0.3)


if __name__ == "__main__":
    raise SystemExit(main())
