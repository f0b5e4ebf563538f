"""Malformed input refused before any view runs, with a 4xx naming the field (never a database error's 500).

- A NUL byte in an address part, a query parameter or a form field (name or value): PostgreSQL cannot store or
  compare text holding one. 400 naming the field.
- An id in the address (``pk``, ``*_pk``, ``*_id``) beyond a 64-bit column's range: SQLite cannot bind it.
  404 naming the field (nothing can have that id).
"""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

#: The largest id a 64-bit primary key holds (PostgreSQL bigint, SQLite INTEGER).
MAX_ID = 2**63 - 1
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _refuse(request: HttpRequest, field: str, message: str, status: int) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": message, "field": field}, status=status)
    # deferred: this module is loaded with the settings, before the apps and their models are ready
    from annotation.permissions import error_response

    return error_response(request, message, status, {"field": field})


def _is_id(name: str) -> bool:
    return name == "pk" or name.endswith(("_pk", "_id"))


def refused_input(request: HttpRequest, view_kwargs: dict) -> tuple[str, str, int] | None:
    """``(field, message, status)`` of the first malformed input of the request, or None."""
    for name, value in view_kwargs.items():
        if isinstance(value, str) and "\x00" in value:
            return name, f"{name} in the address contains a NUL byte", 400
        number = value if isinstance(value, int) else int(value) if isinstance(value, str) and value.isascii() \
            and value.isdigit() else None
        if _is_id(name) and number is not None and number > MAX_ID:
            return name, f"no {name} {str(number)[:40]}: ids have at most 19 digits", 404
    sources = [request.GET]
    if request.method == "POST" and request.content_type in FORM_TYPES:
        sources.append(request.POST)
    for source in sources:
        for key, values in source.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                field = key.replace("\x00", "\\x00")
                return field, f"the field {field!r} contains a NUL byte", 400
    return None


class MalformedInputMiddleware:
    """Answers :func:`refused_input`'s finding before the view runs."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        found = refused_input(request, view_kwargs)
        return None if found is None else _refuse(request, *found)
