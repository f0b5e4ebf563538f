"""gunicorn settings of ``make serve`` (``gunicorn -c studio/gunicorn_config.py studio.wsgi``), from the environment.

On the embedded default (no ``CELERY_BROKER_URL``) the master also starts and stops the one Celery worker
process that runs the jobs (``studio/embedded_broker.py``); with a broker, ``make worker`` does.

Threaded workers (gthread): a request mostly waits on PostgreSQL, so threads overlap those waits; each
thread keeps its own persistent database connection, so PostgreSQL sees WEB_CONCURRENCY x
GUNICORN_THREADS connections per host (keep that below its ``max_connections``).
"""
import os

from studio.env import env_int

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split()
workers = env_int("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1) + 1, minimum=1)
threads = env_int("GUNICORN_THREADS", 4, minimum=1)
worker_class = "gthread"
timeout = env_int("GUNICORN_TIMEOUT", 60, minimum=1)  # a request still running after this is killed
graceful_timeout = 30
keepalive = 5
max_requests = env_int("GUNICORN_MAX_REQUESTS", 5000, minimum=0)  # recycle workers (0: never)
max_requests_jitter = max_requests // 10
backlog = 2048
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None  # "-" for stdout
logger_class = "studio.access_log.ScrubbingLogger"  # task, claim and answer tokens never reach the log
# The proxy allowed to set X-Forwarded-* (its address; "*" only when nothing else can reach gunicorn).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
control_socket_disable = True  # no runtime-control socket in $HOME (two sites on one host would share it)

_embedded_worker = None


def on_starting(server):
    """The embedded default (no CELERY_BROKER_URL): start the Celery worker process that runs the jobs."""
    global _embedded_worker
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    django.setup()
    from studio import embedded_broker

    if embedded_broker.wanted():
        _embedded_worker = embedded_broker.start_worker()
        server.log.info("embedded Celery worker started (pid %s): jobs queue under var/celery/", _embedded_worker.pid)


def post_worker_init(worker):
    """Each web process connects to the broker once at start: the first *Compute evidence* pays no set-up."""
    from workers.celery import warm_broker

    try:
        warm_broker()
    except Exception as exc:  # noqa: BLE001 - an unreachable broker shows on /healthz; pages still serve
        worker.log.warning("could not reach the Celery broker at start: %s", exc)


def on_exit(server):
    if _embedded_worker is not None:
        from studio import embedded_broker

        embedded_broker.stop_worker(_embedded_worker)
