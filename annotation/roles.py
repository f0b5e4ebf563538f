"""Roles: who is a researcher (a member of the ``researchers`` group, or a superuser)."""
from __future__ import annotations

RESEARCHERS = "researchers"


def is_researcher(user) -> bool:
    return user.is_authenticated and (user.is_superuser or user.groups.filter(name=RESEARCHERS).exists())
