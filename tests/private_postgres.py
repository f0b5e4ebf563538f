"""A private PostgreSQL cluster for tests that restart the server: never the shared one on port 5432.

``initdb`` into a temporary directory, served on a free loopback port (as the ``postgres`` user when the
tests run as root: the server refuses root); ``restart`` is ``pg_ctl restart -m fast``, what a package
upgrade or an operator does: every session is terminated, the server is down until it is ready again.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.intake import free_port


def server_bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are: on PATH, else Debian's newest ``/usr/lib/postgresql/<v>/bin``."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    return Path(candidates[-1]).parent


class PrivateCluster:
    """One throw-away cluster; ``with PrivateCluster() as pg: pg.url()``."""

    def __init__(self) -> None:
        self.bindir = server_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="salient-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            os.chown(self.root, pwd.getpwnam("postgres").pw_uid, -1)
            self._as_owner = ["runuser", "-u", "postgres", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str) -> None:
        with open(self.root / "ctl.log", "ab") as out:
            done = subprocess.run([*self._as_owner, str(self.bindir / program), *args], stdout=out,
                                  stderr=subprocess.STDOUT, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError(f"{program} {' '.join(args)} failed: {self.read_log()[-2000:]}")

    def _ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *args)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C",
                  "--no-sync")
        # fsync off: nothing here survives the machine; a restart (fast or not) still loses no commit.
        self._ctl("-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                        f"-c max_connections=200", "start")

    def restart(self) -> tuple[float, float]:
        """``pg_ctl restart -m fast``; the (start, end) wall-clock times of the outage."""
        began = time.time()
        self._ctl("-m", "fast", "restart")
        return began, time.time()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("-m", "immediate", "stop")

    def read_log(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.root / "ctl.log", self.log) if p.exists()]
        return "\n".join(parts)

    def __enter__(self) -> "PrivateCluster":
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
