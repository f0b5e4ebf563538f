"""PostgreSQL restarted while 50 clients submit answers through gunicorn, with retries: every accepted answer is
stored exactly once, none is lost, and every 5xx the server sent is a database-connection error of the restart
window that its client retried.

The server is a private cluster (tests/private_postgres.py), never the shared one; gunicorn runs as ``make serve``
does (persistent connections, ``CONN_HEALTH_CHECKS``). A client retries a 5xx or a dropped connection; a 409 after
such a failure means an earlier attempt was stored although its reply was lost, and the database must agree.
A second restart while no request runs leaves every pooled connection dead: the next requests must not fail.
"""
from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest

from bench.intake import ROOT, free_port, post_answer, start_gunicorn, stop, wait_up
from tests.private_postgres import PrivateCluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CLIENTS = 50
ANSWERS = 300
RESTART_AFTER = 0.3  # share of the answers settled before the restart
QUIET = 16  # answers submitted after a second restart, made while no request ran
LATE_SECONDS = 5.0  # after the server is back, a request begun before the outage may still fail on its old connection
DEADLINE = 45.0
DB_ERROR = re.compile(r"(OperationalError|InterfaceError|AdminShutdown)\b")


def _database_child(env: dict, url: str) -> subprocess.Popen:
    """tests/intake_db.py: migrates and prepares now, checks when given the stored ids."""
    return subprocess.Popen([sys.executable, "-m", "tests.intake_db", url, str(ANSWERS), "100"], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _reply(child: subprocess.Popen) -> dict:
    line = child.stdout.readline()
    assert line, f"tests/intake_db.py stopped (exit status {child.poll()})"
    return json.loads(line)


def _client(base: str, items: list, deadline: float, record: dict, settled: list) -> None:
    """Submit each answer once, retrying (with a growing pause) while the reply is a 5xx or no reply."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        for pk, token, _ in items:
            attempts = record[pk] = []
            while True:
                began = time.time()
                try:
                    status = post_answer(conn, pk, token)
                except (OSError, http.client.HTTPException):
                    conn.close()
                    status = 599  # no reply at all
                attempts.append((began, time.time(), status))
                if status < 500 or time.monotonic() > deadline:
                    break
                time.sleep(min(0.05 * len(attempts), 0.5))
            settled.append(pk)
    finally:
        conn.close()


def _run_clients(base: str, items: list, clients: int, cluster: PrivateCluster | None = None):
    """``clients`` threads submit ``items``; with ``cluster``, it restarts once RESTART_AFTER of them are settled.

    Returns each answer's attempts and the outage (start, end), if any.
    """
    record: dict[int, list] = {}
    settled: list[int] = []
    deadline = time.monotonic() + DEADLINE
    threads = [threading.Thread(target=_client, args=(base, items[i::clients], deadline, record, settled))
               for i in range(clients)]
    for t in threads:
        t.start()
    outage = None
    if cluster is not None:
        while len(settled) < RESTART_AFTER * len(items) and time.monotonic() < deadline:
            time.sleep(0.02)
        outage = cluster.restart()
    for t in threads:
        t.join()
    return record, outage


def _server_errors(log_text: str) -> tuple[list[dict], list[str]]:
    """The Django error records (JSON lines) and any other error line of gunicorn's log."""
    records, other = [], []
    for line in log_text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if "[ERROR]" in line or "[CRITICAL]" in line:
                other.append(line)
            continue
        if entry.get("level") in ("ERROR", "CRITICAL"):
            records.append(entry)
    return records, other


def test_postgres_restart_under_load_loses_and_duplicates_no_answer(tmp_path):
    access_log, server_log = tmp_path / "access.log", tmp_path / "gunicorn.log"
    env = {**os.environ, "SECRET_KEY": secrets.token_urlsafe(48), "SALIENT_VAR_DIR": str(tmp_path / "var"),
           "DEBUG": "0", "LOG_FORMAT": "json", "LOG_LEVEL": "ERROR", "SALIENT_ANSWER_RATE": "1000000/s",
           "GUNICORN_ACCESS_LOG": str(access_log)}
    env.pop("CELERY_BROKER_URL", None)
    t0 = time.monotonic()
    with PrivateCluster() as cluster, open(server_log, "wb") as log:
        env["DATABASE_URL"] = cluster.url()
        t1 = time.monotonic()
        child = _database_child(env, cluster.url())
        try:
            port = free_port()
            server = start_gunicorn(port, workers=2, threads=4, env=env, log=log)  # starts while the child migrates
            try:
                prepared = _reply(child)
                t2 = time.monotonic()
                wait_up([f"http://127.0.0.1:{port}"])
                t3 = time.monotonic()
                base, items = f"http://127.0.0.1:{port}", prepared["items"]
                record, (down, up) = _run_clients(base, items[:-QUIET], CLIENTS, cluster)
                # Restarted again while idle: every server thread's pooled connection is dead and must be
                # noticed (CONN_HEALTH_CHECKS) rather than fail the next request.
                cluster.restart()
                quiet, _ = _run_clients(base, items[-QUIET:], 8)
            finally:
                stop([server])
            t4 = time.monotonic()
            first_try = {pk for pk, attempts in quiet.items() if [s for _, _, s in attempts] == [200]}
            record.update(quiet)
            final = {pk: attempts[-1][2] for pk, attempts in record.items()}
            accepted = {pk for pk, status in final.items() if status == 200}
            # 409 "already submitted" after a failed attempt: that attempt was stored, its reply lost.
            earlier = {pk for pk, status in final.items()
                       if status == 409 and any(s >= 500 for _, _, s in record[pk][:-1])}
            child.stdin.write(json.dumps(sorted(accepted | earlier)) + "\n")
            child.stdin.flush()
            checked = _reply(child)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(30)

    unsettled = {pk: [s for _, _, s in attempts] for pk, attempts in record.items()
                 if pk not in accepted and pk not in earlier}
    assert len(record) == len(prepared["items"]) and not unsettled, f"answers not settled: {unsettled}"
    assert checked["problems"] == [] and checked["answers"] == len(accepted) + len(earlier)

    assert first_try == set(quiet), "a request after the idle restart failed on a stale connection"
    failed = [(began, status) for attempts in record.values() for began, _, status in attempts if status >= 500]
    assert failed, "the restart hit no request: the test did not test anything"
    assert any(began > up for attempts in record.values() for began, _, s in attempts if s == 200), \
        "no answer was accepted after the restart"

    errors, other = _server_errors(server_log.read_text(errors="replace"))
    assert other == [], other
    sent_5xx = [int(m) for m in re.findall(r'" (5\d\d) ', access_log.read_text())]
    seen_5xx = [s for _, s in failed if s != 599]
    assert len(sent_5xx) == len(seen_5xx) == len(errors), (len(sent_5xx), len(seen_5xx), len(errors))
    for entry in errors:
        when = dt.datetime.fromisoformat(entry["time"]).timestamp()
        raised = re.findall(r"^([A-Za-z_][\w.]*)(?::|$)", entry.get("exception") or "", re.MULTILINE)
        assert entry["logger"] == "django.request" and raised and DB_ERROR.search(raised[-1]), entry
        assert down - 0.5 <= when <= up + LATE_SECONDS, (entry["time"], down, up)
    print(f"\n{len(accepted)} accepted, {len(earlier)} stored by an attempt whose reply was lost; "
          f"outage {up - down:.2f} s; {len(failed)} failed attempts ({len(sent_5xx)} x 5xx, "
          f"{len(failed) - len(seen_5xx)} without a reply), all retried; seconds: cluster {t1 - t0:.1f}, "
          f"migrate and study {t2 - t1:.1f}, gunicorn up {t3 - t2:.1f}, clients {t4 - t3:.1f}")
