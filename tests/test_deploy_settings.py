"""Deployment settings: check --deploy with the documented production variables, the secret key, logs, Sentry.

Settings are read once per process, so each case runs ``manage.py`` or Python in a subprocess with a
clean environment.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from studio.log_format import JsonFormatter, logging_config

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV_FILE = ROOT / "docs" / "production.env.example"


def documented_env() -> dict[str, str]:
    """The variables of docs/production.env.example as written (its SECRET_KEY is left empty)."""
    env = {}
    for line in PRODUCTION_ENV_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def production_env() -> dict[str, str]:
    """The documented production variables with a fresh random key."""
    return {**documented_env(), "SECRET_KEY": secrets.token_urlsafe(64)}


def run(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SALIENT_VAR_DIR": str(tmp_path / "var"), **env}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory) -> Path:
    static = tmp_path_factory.mktemp("static")
    done = run(["manage.py", "collectstatic", "--noinput", "-v0"], {"SALIENT_STATIC_ROOT": str(static)},
               tmp_path_factory.mktemp("collect"))
    assert done.returncode == 0, done.stderr
    return static


@pytest.mark.slow
def test_check_deploy_passes_with_the_documented_production_variables(tmp_path, collected_static):
    env = {**production_env(), "SALIENT_STATIC_ROOT": str(collected_static)}
    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


SWITCHES = {"SESSION_COOKIE_SECURE": "security.W012", "CSRF_COOKIE_SECURE": "security.W016",
            "SECURE_HSTS_SECONDS": "security.W004", "SECURE_SSL_REDIRECT": "security.W008",
            "CACHE_URL": "studio.W001", "CELERY_BROKER_URL": "studio.W003", "SALIENT_REGISTRY_ROOTS": "studio.W005"}


@pytest.mark.slow
def test_check_deploy_names_each_missing_production_switch(tmp_path, collected_static):
    env = {k: v for k, v in production_env().items() if k not in SWITCHES}
    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
               {**env, "SALIENT_STATIC_ROOT": str(collected_static)}, tmp_path)
    assert done.returncode != 0
    assert {w for w in SWITCHES.values() if w in done.stderr} == set(SWITCHES.values())


@pytest.mark.slow
def test_check_deploy_warns_about_a_missing_static_manifest_and_a_generated_key(tmp_path):
    env = {**production_env(), "SALIENT_STATIC_ROOT": str(tmp_path / "nothing-collected"),
           "ALLOWED_HOSTS": "localhost"}
    del env["SECRET_KEY"]
    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)
    assert done.returncode != 0
    assert "studio.W004" in done.stderr and "studio.W002" in done.stderr


def test_startup_is_refused_when_debug_is_off_and_no_key_is_set(tmp_path):
    env = {**documented_env(), "SALIENT_STATIC_ROOT": str(tmp_path)}
    assert env["SECRET_KEY"] == ""  # the example is not deployable as it stands
    done = run(["manage.py", "check"], env, tmp_path)
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr and "ALLOWED_HOSTS=studio.example.org" in done.stderr


def test_startup_is_refused_on_request_even_on_loopback(tmp_path):
    done = run(["manage.py", "check"], {"DEBUG": "0", "SALIENT_REQUIRE_SECRET_KEY": "1"}, tmp_path)
    assert done.returncode != 0
    assert "SALIENT_REQUIRE_SECRET_KEY=1" in done.stderr


SETUP_AND_SIGN = """
import django, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
django.setup()
from django.urls import reverse
reverse("home")
print("var exists after setup:", os.path.exists(os.environ["SALIENT_VAR_DIR"]))
if "sign" in sys.argv:
    from django.core import signing
    print("signature:", signing.Signer().sign("assignment-1"))
"""


def test_settings_import_creates_no_directory_and_the_key_is_generated_on_first_use(tmp_path):
    from django.core.signing import Signer

    from studio.secret_key import read_or_create_key

    done = run(["-c", SETUP_AND_SIGN, "sign"], {"DEBUG": "0"}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "var exists after setup: False" in done.stdout
    key_file = tmp_path / "var" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = read_or_create_key(key_file)
    assert len(key) >= 50 and key != read_or_create_key(tmp_path / "elsewhere" / "secret_key")
    assert f"signature: {Signer(key=key).sign('assignment-1')}" in done.stdout


def test_a_short_key_file_is_refused_with_its_path(tmp_path):
    from studio.secret_key import read_or_create_key

    (tmp_path / "secret_key").write_text("short\n")
    with pytest.raises(ImproperlyConfigured, match="secret_key holds no usable secret key"):
        read_or_create_key(tmp_path / "secret_key")


def test_json_logs_are_one_object_per_line_with_extras_and_exception():
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        import sys as _sys

        record = logging.LogRecord("annotation.recruiters.mturk", logging.INFO, __file__, 1, "paid %s cents",
                                   (150,), _sys.exc_info())
    record.study = 7
    line = formatter.format(record)
    assert "\n" not in line.split('"exception"')[0]
    entry = json.loads(line)
    assert entry["message"] == "paid 150 cents" and entry["level"] == "INFO" and entry["study"] == 7
    assert entry["logger"] == "annotation.recruiters.mturk" and "ValueError: boom" in entry["exception"]


def test_logging_config_keeps_money_moving_calls_at_info_and_names_bad_values():
    config = logging_config(fmt="json", level="warning")
    assert config["root"]["level"] == "WARNING"
    assert config["loggers"]["annotation.recruiters"]["level"] == "INFO"
    assert config["formatters"]["default"]["()"] is JsonFormatter
    with pytest.raises(ImproperlyConfigured, match="LOG_FORMAT='xml'"):
        logging_config(fmt="xml", level="INFO")
    with pytest.raises(ImproperlyConfigured, match="LOG_LEVEL='LOUD'"):
        logging_config(fmt="text", level="loud")


def test_json_log_format_reaches_the_running_process(tmp_path):
    code = "import django, logging, os; os.environ['DJANGO_SETTINGS_MODULE']='studio.settings'; django.setup(); " \
           "logging.getLogger('annotation.recruiters.mturk').info('created HIT %s', 'H1')"
    done = run(["-c", code], {"LOG_FORMAT": "json"}, tmp_path)
    entry = json.loads(done.stderr.strip().splitlines()[-1])
    assert entry["message"] == "created HIT H1" and entry["level"] == "INFO"


def test_sentry_is_set_up_for_django_and_celery_only_when_a_dsn_is_given(tmp_path):
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='studio.settings'; django.setup(); "
            "import sentry_sdk; c = sentry_sdk.get_client(); print('active:', c.is_active()); "
            "print('integrations:', sorted(c.integrations))")
    with_dsn = run(["-c", code], {"SENTRY_DSN": "http://public@127.0.0.1:9/1"}, tmp_path)
    assert with_dsn.returncode == 0, with_dsn.stderr
    assert "active: True" in with_dsn.stdout
    assert "'celery'" in with_dsn.stdout and "'django'" in with_dsn.stdout
    import sentry_sdk  # this test process has no SENTRY_DSN

    assert not sentry_sdk.get_client().is_active()


def test_static_urls_are_hashed_once_collectstatic_wrote_the_manifest(tmp_path):
    from studio.static import StaticStorage

    before = StaticStorage(location=tmp_path, base_url="/static/")
    assert before.url("admin/css/base.css") == "/static/admin/css/base.css"
    (tmp_path / "staticfiles.json").write_text(json.dumps(
        {"paths": {"admin/css/base.css": "admin/css/base.0123abcd.css"}, "version": "1.1", "hash": "x"}))
    after = StaticStorage(location=tmp_path, base_url="/static/")
    assert after.url("admin/css/base.css") == "/static/admin/css/base.0123abcd.css"
    with pytest.raises(ValueError, match="Missing staticfiles manifest entry"):
        after.url("admin/css/not-collected.css")


def test_a_fresh_clone_migrates_its_embedded_sqlite_database_into_a_new_var_dir(tmp_path):
    """The embedded default: no ``var/`` yet, no DATABASE_URL; ``migrate`` makes the folder and the file."""
    done = run(["manage.py", "migrate", "-v0"], {}, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "var" / "db.sqlite3").stat().st_size > 0


def test_starting_django_imports_neither_torch_nor_sklearn(tmp_path):
    """Web processes and commands start light: the analysis libraries load where a job uses them."""
    code = ("import django, os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'studio.settings'; django.setup(); "
            "print(sorted(m for m in ('torch', 'sklearn', 'umap') if m in sys.modules))")
    done = run(["-c", code], {}, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
