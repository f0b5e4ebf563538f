"""Django's SQLite backend, making the database file's folder on the first connection (never at import)."""
from __future__ import annotations

from pathlib import Path

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        name = str(conn_params["database"])
        # Django passes uri=True for every file name since 5.1; only a "file:" URI or memory is left alone.
        if not (name == ":memory:" or name.startswith("file:")):
            Path(name).parent.mkdir(parents=True, exist_ok=True)
        return super().get_new_connection(conn_params)
