"""Settings for Salient Studio, read from the environment.

Embedded defaults give a quick start without any service: a SQLite file under
``var/`` and Celery jobs queued as files under ``var/celery/`` for the worker process that ``make serve``
starts (``studio/embedded_broker.py``). Set
``DATABASE_URL`` (PostgreSQL) and ``CELERY_BROKER_URL`` (Redis) for a real
deployment, and the variables of the README's production section (``docs/DEPLOY.md``).
Importing the settings creates no file and no directory: ``var/`` is made on first use.
"""
from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from studio import embedded_broker
from studio.env import env_bool, env_int, env_list, env_pair, env_rate
from studio.log_format import logging_config
from studio.secret_key import secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SALIENT_VAR_DIR", BASE_DIR / "var"))

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
SECRET_KEY = secret_key(environ_key=os.environ.get("SECRET_KEY"), debug=DEBUG, allowed_hosts=ALLOWED_HOSTS,
                        key_file=VAR_DIR / "secret_key", required=env_bool("SALIENT_REQUIRE_SECRET_KEY", False))
SALIENT_SECRET_KEY_GENERATED = not os.environ.get("SECRET_KEY")
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")  # old keys still accepted while rotating
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# HTTPS: set these behind TLS (the README's production section lists them).
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = env_pair("SECURE_PROXY_SSL_HEADER")
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "studio.apps.StudioConfig",
    "annotation",
    "annotation.api",
    "ninja",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "studio.csp.ContentSecurityPolicyMiddleware",
    "studio.static.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "studio.input_guard.MalformedInputMiddleware",
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
                "studio.csp.nonce",
            ],
            "builtins": ["annotation.templatetags.studio_extras"],
        },
    },
]

_default_db = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
# Persistent connections, checked before reuse (not psycopg's pool): see docs/DEPLOY.md.
DATABASES = {"default": dj_database_url.parse(
    os.environ.get("DATABASE_URL", _default_db),
    conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600, minimum=0), conn_health_checks=True)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["ENGINE"] = "studio.sqlite3"  # makes var/ on the first connection
    # A file, not memory, so that a real Celery worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    # WAL: readers never wait for the writer, and a commit needs no fsync of a rollback journal; IMMEDIATE:
    # a writing transaction takes the lock at BEGIN, so two writers queue instead of failing mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=30, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
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
STATIC_ROOT = Path(os.environ.get("SALIENT_STATIC_ROOT", VAR_DIR / "static"))  # written by collectstatic
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "studio.static.StaticStorage"},
}

# Rate limits and login throttling count in this cache; production shares one Redis cache (CACHE_URL).
CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r} is not a Redis URL (redis://host:6379/1)")
# Without CACHE_URL (the embedded default) a file cache under var/ is shared by every process of this host,
# so gunicorn's workers count one limit between them (not atomically: Redis is what production uses).
# studio.cache.RedisCache: Django's Redis backend, one client per pool and ``incr`` in one round trip.
CACHES = {"default": {"BACKEND": "studio.cache.RedisCache", "LOCATION": CACHE_URL}
          if CACHE_URL else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                             "LOCATION": str(VAR_DIR / "cache"), "OPTIONS": {"MAX_ENTRIES": 100_000}}}
RATELIMIT_USE_CACHE = "default"
# Behind a proxy, the request header holding the client's address (e.g. HTTP_X_REAL_IP set by nginx).
RATELIMIT_IP_META_KEY = os.environ.get("RATELIMIT_IP_META_KEY") or None
SALIENT_SIGNUP_RATE = env_rate("SALIENT_SIGNUP_RATE", "10/m")  # sign-up attempts per client address
SALIENT_LOGIN_FAILURE_RATE = env_rate("SALIENT_LOGIN_FAILURE_RATE", "10/m")  # per address and per user name
SALIENT_CROWD_ENTRY_RATE = env_rate("SALIENT_CROWD_ENTRY_RATE", "30/m")  # crowd-site entries per client address
SALIENT_ANSWER_RATE = env_rate("SALIENT_ANSWER_RATE", "30/m")  # answer posts per worker (crowd pages: per address)
# The submit locks its study row FOR UPDATE, so a study's answers queue (the earlier path; bench/intake.py's anchor).
SALIENT_INTAKE_STUDY_LOCK = env_bool("SALIENT_INTAKE_STUDY_LOCK", False)

# Artifacts (images, heatmaps, tables) are content addressed under this directory.
ARTIFACT_DIR = Path(os.environ.get("SALIENT_ARTIFACT_DIR", VAR_DIR / "artifacts"))
# The built-in benchmark, its trained models and cached evidence (reused across studies).
SALIENT_BENCHMARK_DIR = Path(os.environ.get("SALIENT_BENCHMARK_DIR", VAR_DIR / "benchmark"))
# Evidence passes (annotation/services/evidence.py): shards per pass, images per batch, DataLoader decoding
# processes, device ("" = cuda when available, else cpu), and where artifacts and shards live.
SALIENT_EVIDENCE_SHARDS = env_int("SALIENT_EVIDENCE_SHARDS", 4, minimum=1)
SALIENT_EVIDENCE_BATCH = env_int("SALIENT_EVIDENCE_BATCH", 64, minimum=1)
SALIENT_EVIDENCE_LOADER_WORKERS = env_int("SALIENT_EVIDENCE_LOADER_WORKERS", 0, minimum=0)
SALIENT_AMP = env_bool("SALIENT_AMP", False)
SALIENT_DEVICE = os.environ.get("SALIENT_DEVICE", "")
# A running job whose last progress is older than this is taken over when its message is redelivered.
SALIENT_JOB_STALE_SECONDS = env_int("SALIENT_JOB_STALE_SECONDS", 900, minimum=30)
SALIENT_ARTIFACT_URL = os.environ.get("SALIENT_ARTIFACT_URL", "")
SALIENT_S3_ENDPOINT_URL = os.environ.get("SALIENT_S3_ENDPOINT_URL", "")
EXPORT_DIR = Path(os.environ.get("SALIENT_EXPORT_DIR", VAR_DIR / "exports"))
# Folders researchers may register checkpoints and image folders from (os.pathsep-separated); empty = any
# path this process can read (the embedded default; `check --deploy` warns).
SALIENT_REGISTRY_ROOTS = [p for p in os.environ.get("SALIENT_REGISTRY_ROOTS", "").split(os.pathsep) if p]
# S3 buckets checkpoints may be registered from (comma-separated); with registry roots set, no other bucket.
SALIENT_REGISTRY_BUCKETS = [b.strip() for b in os.environ.get("SALIENT_REGISTRY_BUCKETS", "").split(",") if b.strip()]
# Uploaded checkpoints and image folders (registry page, API, client) are kept under this folder, one
# sub-folder per researcher; the limits refuse an upload while it streams in (annotation/upload_limits.py).
SALIENT_UPLOAD_DIR = Path(os.environ.get("SALIENT_UPLOAD_DIR", VAR_DIR / "uploads"))
SALIENT_UPLOAD_MAX_CHECKPOINT_MB = env_int("SALIENT_UPLOAD_MAX_CHECKPOINT_MB", 1024, minimum=1)
SALIENT_UPLOAD_MAX_DATASET_MB = env_int("SALIENT_UPLOAD_MAX_DATASET_MB", 4096, minimum=1)  # archive and unpacked
SALIENT_UPLOAD_MAX_IMAGES = env_int("SALIENT_UPLOAD_MAX_IMAGES", 100_000, minimum=1)
FILE_UPLOAD_HANDLERS = ["annotation.upload_limits.LimitedUploadHandler",
                        "django.core.files.uploadhandler.MemoryFileUploadHandler",
                        "django.core.files.uploadhandler.TemporaryFileUploadHandler"]

# Celery. Without CELERY_BROKER_URL (the embedded default) the broker is kombu's filesystem transport under
# var/celery/ and `make serve` starts one worker process next to gunicorn (studio/embedded_broker.py); with it
# (Redis) `make worker` serves the queues. Either way a request never waits for a job.
SALIENT_EMBEDDED_BROKER = not os.environ.get("CELERY_BROKER_URL")
SALIENT_EMBEDDED_WORKER = env_bool("SALIENT_EMBEDDED_WORKER", True)  # 0: `make serve` starts no worker
SALIENT_EMBEDDED_WORKER_CONCURRENCY = env_int("SALIENT_EMBEDDED_WORKER_CONCURRENCY", 2, minimum=1)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or embedded_broker.URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3 * 3600, minimum=120)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
# Redis hands an unacknowledged (acks_late) job to another worker after the visibility timeout: it must
# outlast the longest job, or a job still running is started a second time (workers/celery.py checks).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int(
    "CELERY_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + max(600, CELERY_TASK_TIME_LIMIT // 10), minimum=1),
    **(embedded_broker.transport_options(VAR_DIR / "celery") if SALIENT_EMBEDDED_BROKER else {})}
# Seconds between a worker's scans for such jobs (unset: kombu's, a scan every 10th 10-second tick, so up to
# ~100 s after the timeout); the redelivery test sets 1.
if _restore_seconds := env_int("CELERY_UNACKED_RESTORE_SECONDS", 0, minimum=0):
    CELERY_BROKER_TRANSPORT_OPTIONS.update(unacked_restore_interval=_restore_seconds, unacked_restore_throttle=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Queues, each served by its own workers (make worker QUEUE=…): heavy torch jobs never hold up expiry.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    **{f"workers.tasks.{name}": {"queue": "evidence"}
       for name in ("compute_study_evidence", "compute_evidence_shard", "compute_study_outputs", "run_kind_job")},
    **{f"workers.tasks.{name}": {"queue": "periodic"} for name in ("expire_assignments", "reconcile_crowd_backends")},
}
if os.environ.get("SALIENT_ONE_QUEUE"):  # one queue for everything (a single-worker install, the tests' workers)
    CELERY_TASK_ROUTES = {"*": {"queue": os.environ["SALIENT_ONE_QUEUE"]}}
CELERY_BEAT_SCHEDULE = {  # a run not started before the next one is due is dropped (expires)
    "expire-assignments": {"task": "workers.tasks.expire_assignments", "schedule": 60.0,
                           "options": {"expires": 55}},
    "reconcile-crowd-backends": {"task": "workers.tasks.reconcile_crowd_backends", "schedule": 300.0,
                                 "options": {"expires": 290}},
}

# Platform defaults; each study can override its own.
SALIENT_ASSIGNMENT_SECONDS = int(os.environ.get("SALIENT_ASSIGNMENT_SECONDS", 30 * 60))
# A task page's token lasts the assignment's time plus this margin.
SALIENT_TOKEN_MARGIN_SECONDS = int(os.environ.get("SALIENT_TOKEN_MARGIN_SECONDS", 10 * 60))
SALIENT_MAX_BONUS_CENTS = int(os.environ.get("SALIENT_MAX_BONUS_CENTS", 1000))  # the most one bonus may pay
SALIENT_WORKER_SIGNUP_OPEN = env_bool("SALIENT_WORKER_SIGNUP_OPEN", True)
# Early stopping (annotation/selectors/stopping_policy.py): the probability of a task's full-answer label needed
# to stop it, the
# answers it needs first, and how many new answers of a study make its worker reliabilities refit.
SALIENT_STOP_CONFIDENCE = float(os.environ.get("SALIENT_STOP_CONFIDENCE", "0.975"))
SALIENT_STOP_MIN_ANSWERS = env_int("SALIENT_STOP_MIN_ANSWERS", 2, minimum=1)
SALIENT_STOP_REFIT_ANSWERS = env_int("SALIENT_STOP_REFIT_ANSWERS", 25, minimum=1)

# Crowd backends. The public https:// address crowd sites send workers to.
SALIENT_PUBLIC_URL = os.environ.get("SALIENT_PUBLIC_URL", "")
# Only worker task pages may be framed, and only by these origins (CSP frame-ancestors).
SALIENT_FRAME_ANCESTORS = [o.strip() for o in os.environ.get(
    "SALIENT_FRAME_ANCESTORS", "https://www.mturk.com https://worker.mturk.com https://workersandbox.mturk.com"
).split() if o.strip()]
# Where an MTurk task page may post its assignment (turkSubmitTo); anything else is refused.
SALIENT_MTURK_SUBMIT_ORIGINS = [o.strip() for o in os.environ.get(
    "SALIENT_MTURK_SUBMIT_ORIGINS", "https://www.mturk.com https://workersandbox.mturk.com"
).split() if o.strip()]
SALIENT_MTURK_SANDBOX = env_bool("SALIENT_MTURK_SANDBOX", True)
SALIENT_MTURK_LIFETIME_SECONDS = int(os.environ.get("SALIENT_MTURK_LIFETIME_SECONDS", 7 * 24 * 3600))
SALIENT_MTURK_AUTO_APPROVAL_SECONDS = int(os.environ.get("SALIENT_MTURK_AUTO_APPROVAL_SECONDS", 3 * 24 * 3600))
SALIENT_MTURK_MIN_APPROVAL_PERCENT = int(os.environ.get("SALIENT_MTURK_MIN_APPROVAL_PERCENT", 95))
SALIENT_MTURK_MIN_HITS_APPROVED = int(os.environ.get("SALIENT_MTURK_MIN_HITS_APPROVED", 100))
SALIENT_MTURK_LOCALES = [c for c in os.environ.get("SALIENT_MTURK_LOCALES", "US").split(",") if c]
SALIENT_PROLIFIC_FEE_RATE = float(os.environ.get("SALIENT_PROLIFIC_FEE_RATE", 1 / 3))
# With a token, every Prolific entry is confirmed against Prolific's submissions (SESSION_ID, PROLIFIC_PID).
SALIENT_PROLIFIC_API_TOKEN = os.environ.get("SALIENT_PROLIFIC_API_TOKEN", "")
# Without it, entries are unverified: at most this many open assignments of a study started within the window.
SALIENT_UNVERIFIED_OPEN_MAX = env_int("SALIENT_UNVERIFIED_OPEN_MAX", 20, minimum=1)
SALIENT_UNVERIFIED_OPEN_WINDOW_SECONDS = env_int("SALIENT_UNVERIFIED_OPEN_WINDOW_SECONDS", 600, minimum=1)

LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").lower()
LOGGING = logging_config(fmt=LOG_FORMAT, level=os.environ.get("LOG_LEVEL", "WARNING"))
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"  # Celery keeps the JSON handler

SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
if SENTRY_DSN:
    from studio.sentry import sentry_init

    sentry_init(dsn=SENTRY_DSN, environment=os.environ.get("SENTRY_ENVIRONMENT", "production"),
                traces_sample_rate=float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0")))
