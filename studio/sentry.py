"""Optional error reporting to Sentry for Django and Celery (``SENTRY_DSN``); sentry-sdk is imported only then."""
from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


def sentry_init(*, dsn: str, environment: str, traces_sample_rate: float) -> None:
    try:
        # deferred: loads sentry-sdk
        import sentry_sdk

        # deferred: loads sentry-sdk
        from sentry_sdk.integrations.celery import CeleryIntegration

        # deferred: loads sentry-sdk
        from sentry_sdk.integrations.django import DjangoIntegration
    except ImportError:
        raise ImproperlyConfigured("SENTRY_DSN is set but sentry-sdk is not installed "
                                   "(pip install -r requirements.txt)") from None
    sentry_sdk.init(dsn=dsn, environment=environment, traces_sample_rate=traces_sample_rate,
                    send_default_pii=False, integrations=[DjangoIntegration(), CeleryIntegration()])
