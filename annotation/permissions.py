"""Who may do what: decorators for researcher and worker views, and the error responses."""
from __future__ import annotations

import functools
import json

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from annotation.errors import ApplicationError
from annotation.roles import is_researcher
from annotation.selectors import NotFound, worker_of

__all__ = ["crowd_framable", "error_response", "handles_errors", "is_researcher", "researcher_required",
           "wants_json", "worker_required"]


def wants_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json" or "application/json" in request.headers.get("Accept", "")


def error_response(request: HttpRequest, message: str, status: int, extra: dict | None = None) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"error": message, **(extra or {})}, status=status)
    return render(request, "error.html", {"message": message, "extra": extra or {}}, status=status)


def handles_errors(view):
    """Answer :class:`ApplicationError` and :class:`NotFound` with their status and message."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except ApplicationError as exc:
            return error_response(request, exc.message, exc.status, exc.extra)
        except NotFound as exc:
            return error_response(request, str(exc) or "not found", 404)
        except json.JSONDecodeError as exc:
            return error_response(request, f"the request body is not valid JSON: {exc}", 400)

    return wrapper


def researcher_required(view):
    @login_required
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_researcher(request.user):
            return error_response(request, "this page is for researchers", 403)
        return handles_errors(view)(request, *args, **kwargs)

    return wrapper


def worker_required(view):
    @login_required
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        worker = worker_of(request.user)
        if worker is None:
            return error_response(request, "this page is for crowd workers; sign up as a worker first", 403)
        request.worker = worker
        return handles_errors(view)(request, *args, **kwargs)

    return wrapper


def crowd_framable(view):
    """Let crowd sites frame this page (worker task pages only): no X-Frame-Options, and the CSP's
    ``frame-ancestors`` (:mod:`studio.csp`) naming the allowed sites. Every other page keeps
    ``X-Frame-Options: DENY`` and ``frame-ancestors 'none'``."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.xframe_options_exempt = True
        response.csp_frame_ancestors = " ".join(["'self'", *settings.SALIENT_FRAME_ANCESTORS])
        return response

    return wrapper
