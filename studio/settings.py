"""Settings for Salient Studio, read from the environment.

Embedded defaults give a quick start without any service: a SQLite file under
``var/`` and Celery tasks executed eagerly in the calling process. Set
``DATABASE_URL`` (PostgreSQL) and ``CELERY_BROKER_URL`` (Redis) for a real
deployment.
"""
from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SALIENT_VAR_DIR", BASE_DIR / "var"))


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false)")


DEBUG = _env_bool("DEBUG", False)
_DEV_SECRET = "dev-only-insecure-key-set-SECRET_KEY-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY", _DEV_SECRET)
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "annotation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
X_FRAME_OPTIONS = "DENY"

ROOT_URLCONF = "studio.urls"
WSGI_APPLICATION = "studio.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "builtins": ["annotation.templatetags.studio_extras"],
        },
    },
]

_default_db = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL", _default_db), conn_max_age=0)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # A file, not memory, so that a real Celery worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# Artifacts (images, heatmaps, tables) are content addressed under this directory.
ARTIFACT_DIR = Path(os.environ.get("SALIENT_ARTIFACT_DIR", VAR_DIR / "artifacts"))
# The built-in benchmark, its trained models and cached evidence (reused across studies).
SALIENT_BENCHMARK_DIR = Path(os.environ.get("SALIENT_BENCHMARK_DIR", VAR_DIR / "benchmark"))
EXPORT_DIR = Path(os.environ.get("SALIENT_EXPORT_DIR", VAR_DIR / "exports"))

# Celery: without a broker, tasks run eagerly in-process (the embedded default).
CELERY_TASK_ALWAYS_EAGER = not os.environ.get("CELERY_BROKER_URL")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CELERY_TASK_TIME_LIMIT", 3 * 3600))
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "expire-assignments": {"task": "workers.tasks.expire_assignments", "schedule": 60.0},
    "reconcile-crowd-backends": {"task": "workers.tasks.reconcile_crowd_backends", "schedule": 300.0},
}

# Platform defaults (SPEC §1); each study can override its own.
SALIENT_ASSIGNMENT_SECONDS = int(os.environ.get("SALIENT_ASSIGNMENT_SECONDS", 30 * 60))
SALIENT_WORKER_SIGNUP_OPEN = _env_bool("SALIENT_WORKER_SIGNUP_OPEN", True)

# Crowd backends (SPEC §2). The public https:// address crowd sites send workers to.
SALIENT_PUBLIC_URL = os.environ.get("SALIENT_PUBLIC_URL", "")
# Only worker task pages may be framed, and only by these origins (CSP frame-ancestors).
SALIENT_FRAME_ANCESTORS = [o.strip() for o in os.environ.get(
    "SALIENT_FRAME_ANCESTORS", "https://www.mturk.com https://worker.mturk.com https://workersandbox.mturk.com"
).split() if o.strip()]
# Where an MTurk task page may post its assignment (turkSubmitTo); anything else is refused.
SALIENT_MTURK_SUBMIT_ORIGINS = [o.strip() for o in os.environ.get(
    "SALIENT_MTURK_SUBMIT_ORIGINS", "https://www.mturk.com https://workersandbox.mturk.com"
).split() if o.strip()]
SALIENT_MTURK_SANDBOX = _env_bool("SALIENT_MTURK_SANDBOX", True)
SALIENT_MTURK_LIFETIME_SECONDS = int(os.environ.get("SALIENT_MTURK_LIFETIME_SECONDS", 7 * 24 * 3600))
SALIENT_MTURK_AUTO_APPROVAL_SECONDS = int(os.environ.get("SALIENT_MTURK_AUTO_APPROVAL_SECONDS", 3 * 24 * 3600))
SALIENT_MTURK_MIN_APPROVAL_PERCENT = int(os.environ.get("SALIENT_MTURK_MIN_APPROVAL_PERCENT", 95))
SALIENT_MTURK_MIN_HITS_APPROVED = int(os.environ.get("SALIENT_MTURK_MIN_HITS_APPROVED", 100))
SALIENT_MTURK_LOCALES = [c for c in os.environ.get("SALIENT_MTURK_LOCALES", "US").split(",") if c]
SALIENT_PROLIFIC_FEE_RATE = float(os.environ.get("SALIENT_PROLIFIC_FEE_RATE", 1 / 3))

if not DEBUG and SECRET_KEY == _DEV_SECRET and _env_bool("SALIENT_REQUIRE_SECRET_KEY", False):
    raise ImproperlyConfigured("SECRET_KEY must be set in production (SALIENT_REQUIRE_SECRET_KEY=1)")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
