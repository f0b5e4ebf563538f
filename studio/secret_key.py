"""The secret key: from the environment, or generated once into ``var/`` for a loopback-only install.

No key is ever written in the code. A site served beyond loopback (``ALLOWED_HOSTS`` naming another
host) with ``DEBUG=0`` must set ``SECRET_KEY``: startup is refused otherwise, because every web and
Celery process on every host has to share one key. The embedded quick start (loopback only, or
``DEBUG=1``) gets a random key that is generated on first use, not at settings import, so importing
the settings never creates ``var/``.
"""
from __future__ import annotations

import functools
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import lazy

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
MIN_LENGTH = 50


def loopback_only(hosts: list[str]) -> bool:
    return all(host.lower() in LOOPBACK_HOSTS for host in hosts)


def secret_key(*, environ_key: str | None, debug: bool, allowed_hosts: list[str], key_file: Path,
               required: bool = False):
    """``SECRET_KEY`` from the environment, or a lazy string read from (or generated into) ``key_file``."""
    if environ_key:
        return environ_key
    if required or not (debug or loopback_only(allowed_hosts)):
        reason = ("SALIENT_REQUIRE_SECRET_KEY=1" if required else
                  f"DEBUG=0 and ALLOWED_HOSTS={','.join(allowed_hosts) or '(empty)'} serves beyond loopback")
        raise ImproperlyConfigured(
            f"SECRET_KEY is not set ({reason}): refusing to start with a key that is not secret. Set SECRET_KEY "
            "to the same random value for every web and Celery process, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(64))'`.")
    return lazy(read_or_create_key, str)(Path(key_file))


@functools.cache
def read_or_create_key(path: Path) -> str:
    """The key stored at ``path``; the first caller of all processes writes a new random one."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # var/: private when this makes it
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(64) + "\n")
        try:
            os.link(tmp, path)  # atomic: a process that got there first keeps its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < MIN_LENGTH:
        raise ImproperlyConfigured(f"{path} holds no usable secret key ({len(key)} characters, at least "
                                   f"{MIN_LENGTH} needed): delete the file to generate a new one, or set SECRET_KEY")
    return key
