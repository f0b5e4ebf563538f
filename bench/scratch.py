"""A migrated scratch PostgreSQL database for a benchmark, dropped afterwards (Django set up on it)."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from intake import admin_sql, setup_django  # noqa: E402

ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


@contextmanager
def scratch_database(admin_url: str, name: str):
    base_url = admin_url.rsplit("/", 1)[0]
    admin_sql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin_sql(admin_url, f"CREATE DATABASE {name}")
    try:
        setup_django(f"{base_url}/{name}")
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield
    finally:
        from django.db import connections

        connections.close_all()
        admin_sql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
