"""Secrets out of logs and files private (issue 29, finding 10): task, claim and answer tokens never reach
gunicorn's access log, and the SQLite database and ``var/`` are created readable by their owner only."""
from __future__ import annotations

import datetime as dt
import os
import stat
import types
from pathlib import Path

import pytest
from django.db import connection

SECRET = "eyJhIjoxfQ:1vAbCd:SeCrEtSiGnAtUrE"


@pytest.fixture
def access_log(tmp_path):
    """gunicorn's logger as ``make serve`` configures it (studio/gunicorn_config.py), writing to a file."""
    from gunicorn.config import Config
    from gunicorn.util import load_class

    cfg = Config()
    cfg.set("config", str(Path(__file__).resolve().parent.parent / "studio" / "gunicorn_config.py"))
    namespace: dict = {}
    exec(compile(Path(cfg.config).read_text(), cfg.config, "exec"), namespace)  # noqa: S102 (our own config file)
    cfg.set("logger_class", namespace.get("logger_class", "gunicorn.glogging.Logger"))
    path = tmp_path / "access.log"
    cfg.set("accesslog", str(path))
    logger = load_class(cfg.logger_class, section="gunicorn.loggers")(cfg)
    return logger, path


@pytest.mark.parametrize("url", [f"/ext/a/7/?t={SECRET}", f"/ext/mturk/3/answer/?t={SECRET}&x=1",
                                 f"/work/signup/?invite={SECRET}", f"/ext/a/7/?token={SECRET}"])
def test_tokens_never_reach_the_access_log(access_log, url):
    logger, path = access_log
    path_info, _, query = url.partition("?")
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": url, "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": path_info,
               "QUERY_STRING": query, "REMOTE_ADDR": "10.0.0.9", "HTTP_REFERER": f"https://studio.example{url}",
               "HTTP_USER_AGENT": "probe"}
    resp = types.SimpleNamespace(status="200 OK", sent=10, headers=[("Content-Type", "text/html")])
    req = types.SimpleNamespace(headers=[("REFERER", f"https://studio.example{url}")])
    logger.access(resp, req, environ, dt.timedelta(milliseconds=5))
    for handler in logger.access_log.handlers:
        handler.flush()
    line = path.read_text()
    assert path_info in line and "[redacted]" in line
    assert SECRET not in line and "SeCrEt" not in line
    atoms = logger.atoms(resp, req, environ, dt.timedelta(milliseconds=5))
    assert not [key for key, value in atoms.items() if isinstance(value, str) and "SeCrEt" in value]


def test_other_parameters_stay_in_the_log():
    from studio.access_log import scrub

    line = "GET /studies/1/?tkey=a&tasks=1,2&page=2 HTTP/1.1"
    assert scrub(line) == line
    assert scrub("t=abc&tkey=t=x") == "t=[redacted]&tkey=t=x"


@pytest.fixture
def world_readable_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_database_and_its_folder_are_created_private(tmp_path, world_readable_umask, django_db_blocker):
    from studio.sqlite3.base import DatabaseWrapper

    folder = tmp_path / "var"
    wrapper = DatabaseWrapper({**connection.settings_dict, "ENGINE": "studio.sqlite3", "OPTIONS": {},
                               "NAME": str(folder / "db.sqlite3")})
    with django_db_blocker.unblock():
        try:
            with wrapper.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("CREATE TABLE t (x integer)")
        finally:
            wrapper.close()
    assert _mode(folder) == 0o700
    assert _mode(folder / "db.sqlite3") == 0o600
    assert all(_mode(p) & 0o077 == 0 for p in folder.iterdir())  # the WAL and shared-memory files too


def test_an_existing_world_readable_database_is_tightened(tmp_path, world_readable_umask):
    from studio.sqlite3.base import private_database_file

    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"")
    path.chmod(0o644)
    private_database_file(path)
    assert _mode(path) == 0o600


def test_the_generated_secret_key_folder_is_private(tmp_path, world_readable_umask):
    from studio.secret_key import read_or_create_key

    read_or_create_key(tmp_path / "var" / "secret_key")
    assert _mode(tmp_path / "var") == 0o700 and _mode(tmp_path / "var" / "secret_key") == 0o600
