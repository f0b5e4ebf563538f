"""Named locks across processes: a PostgreSQL advisory lock (a cache entry with an expiry on other databases)."""
from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache
from django.db import DatabaseError, connection

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """The signed 64-bit advisory-lock key of ``name``."""
    return int.from_bytes(hashlib.sha256(f"salient:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def exclusive(name: str, *, wait: float = 0.0, expire: int = 3600) -> Iterator[bool]:
    """Yield True while this process holds the lock ``name``, False if it could not take it within ``wait`` s.

    On PostgreSQL the lock belongs to this thread's database session: it is released when the block ends or
    when the session does (a killed worker cannot leave it held). Elsewhere (SQLite, one machine) it is a cache
    entry that expires after ``expire`` seconds.
    """
    take, release = (_advisory if connection.vendor == "postgresql" else _cached)(name, expire)
    deadline = time.monotonic() + wait
    held = take()
    while not held and time.monotonic() < deadline:
        time.sleep(min(0.5, max(deadline - time.monotonic(), 0.01)))
        held = take()
    try:
        yield held
    finally:
        if held:
            release()


def _advisory(name: str, expire: int):
    key = lock_key(name)

    def take() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            return bool(cursor.fetchone()[0])

    def release() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
                released = cursor.fetchone()[0]
        except DatabaseError:
            log.exception("lock %s could not be released; ending the session releases it", name)
            if not connection.in_atomic_block:
                connection.close()
            return
        if not released:  # the session ended meanwhile, and the lock with it
            log.warning("lock %s was no longer held by this session", name)

    return take, release


def _cached(name: str, expire: int):
    key, token = f"lock:{name}", uuid.uuid4().hex

    def take() -> bool:
        return bool(cache.add(key, token, timeout=expire))

    def release() -> None:
        if cache.get(key) == token:
            cache.delete(key)

    return take, release
