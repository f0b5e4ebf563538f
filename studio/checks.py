"""``check --deploy`` warnings for a production site: shared cache, shared secret key, broker, static manifest,
registry folders."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core import checks

PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.dummy.DummyCache",
    "django.core.cache.backends.filebased.FileBasedCache", "django.core.cache.backends.db.DatabaseCache",
}


@checks.register(checks.Tags.security, deploy=True)
def check_production_services(app_configs, **kwargs) -> list[checks.CheckMessage]:
    found = []
    backend = settings.CACHES[settings.RATELIMIT_USE_CACHE]["BACKEND"]
    if backend in PER_PROCESS_CACHES:
        found.append(checks.Warning(
            f"the rate limits and login throttling count in {backend.rsplit('.', 1)[-1]}, which is not shared "
            "between processes (or not atomic)", hint="set CACHE_URL to a Redis URL, e.g. redis://127.0.0.1:6379/1",
            id="studio.W001"))
    if settings.SALIENT_SECRET_KEY_GENERATED:
        found.append(checks.Warning(
            "SECRET_KEY is the key generated into var/ on this host; other hosts would sign with another key",
            hint="set SECRET_KEY to one random value for every web and Celery process", id="studio.W002"))
    if settings.SALIENT_EMBEDDED_BROKER:
        found.append(checks.Warning(
            "no Celery broker: jobs queue as files under var/celery/ for the one worker `make serve` starts "
            "on this host", hint="set CELERY_BROKER_URL (Redis) and run `make worker`", id="studio.W003"))
    if not (Path(settings.STATIC_ROOT) / "staticfiles.json").exists():
        found.append(checks.Warning(
            f"no static files manifest in {settings.STATIC_ROOT}", hint="run `manage.py collectstatic` "
            "(make migrate does)", id="studio.W004"))
    if not settings.SALIENT_REGISTRY_ROOTS:
        found.append(checks.Warning(
            "researchers can register any file or folder this server can read as a model or a dataset",
            hint="set SALIENT_REGISTRY_ROOTS to the folders that hold checkpoints and image folders",
            id="studio.W005"))
    return found
