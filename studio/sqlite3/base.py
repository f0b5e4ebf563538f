"""Django's SQLite backend, making the database file's folder on the first connection (never at import).

The folder (``var/``) is made private (0700) and the database file is created, or tightened, to 0600: it holds
every answer, worker id and password hash, and SQLite gives its journal files the database file's mode.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from django.db.backends.sqlite3 import base


def private_database_file(path: Path) -> None:
    """Make ``path``'s folder (0700, when it is new) and the file itself (0600) before SQLite opens it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            try:
                path.chmod(mode & 0o700)
            except PermissionError:  # another user's file: leave it as it is
                pass


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        name = str(conn_params["database"])
        # Django passes uri=True for every file name since 5.1; only a "file:" URI or memory is left alone.
        if not (name == ":memory:" or name.startswith("file:")):
            private_database_file(Path(name))
        return super().get_new_connection(conn_params)
