"""A Content-Security-Policy on every page: scripts only from this site or inline with the request's nonce
(so an injected ``javascript:`` link or ``<script>`` does not run), no plugins, no ``<base>``, and no framing
except the worker task pages that crowd sites frame (:func:`annotation.permissions.crowd_framable`).

Templates mark their inline scripts ``<script nonce="{{ csp_nonce }}">`` (the context processor below).
"""
from __future__ import annotations

import secrets

from django.http import HttpRequest, HttpResponse


def policy(nonce: str, frame_ancestors: str = "'none'") -> str:
    return "; ".join([
        "default-src 'self'", f"script-src 'self' 'nonce-{nonce}'", "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:", "object-src 'none'", "base-uri 'none'", f"frame-ancestors {frame_ancestors}",
    ])


class ContentSecurityPolicyMiddleware:
    """Gives each request a nonce and each response the policy (a framable page keeps its ancestors)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.csp_nonce = secrets.token_urlsafe(16)
        response = self.get_response(request)
        ancestors = getattr(response, "csp_frame_ancestors", "'none'")
        response["Content-Security-Policy"] = policy(request.csp_nonce, ancestors)
        return response


def nonce(request: HttpRequest) -> dict[str, str]:
    """Template context: ``csp_nonce`` for inline ``<script>`` tags."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
