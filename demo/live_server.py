"""Serve the site on a local port from a background thread (for the demo's simulated crowd)."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connections


class _QuietHandler(WSGIRequestHandler):
    # TCP_NODELAY on each connection: the handler writes a response in several small sends, and with Nagle's
    # algorithm the second waits for the client's delayed ACK, ~40 ms a request on loopback (5 ms without).
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


class _Server(ThreadedWSGIServer):
    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            connections.close_all()


@contextmanager
def serving(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run the WSGI app on ``host:port`` (0 = a free port) and yield its base URL."""
    server = _Server((host, port), _QuietHandler, allow_reuse_address=True)
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
