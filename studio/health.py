"""``GET /healthz``: the database answers a query and the Celery broker accepts a connection.

200 with ``{"ok": true, "checks": {...}}`` when both do; 503 naming what failed otherwise (the error's
class only: the endpoint is public, so no host names or messages leave it).
"""
from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from workers.celery import app

BROKER_TIMEOUT_SECONDS = 2


def database_check() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def broker_check() -> str:
    url = settings.CELERY_BROKER_URL
    if url.startswith("memory://"):
        return "no broker: jobs run in the web process"
    with app.connection_for_write(url, connect_timeout=BROKER_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {"database": database_check, "broker": broker_check}


def run_checks() -> tuple[dict[str, dict], list[str]]:
    results, failed = {}, []
    for name, check in CHECKS.items():
        start = time.perf_counter()
        try:
            results[name] = {"ok": True, "detail": check()}
        except Exception as exc:  # any failure is the answer, not a 500
            results[name] = {"ok": False, "error": type(exc).__name__}
            failed.append(name)
        results[name]["ms"] = round(1000 * (time.perf_counter() - start), 1)
    return results, failed


@never_cache
@require_GET
def healthz(request):
    results, failed = run_checks()
    return JsonResponse({"ok": not failed, "failed": failed, "checks": results}, status=503 if failed else 200)
