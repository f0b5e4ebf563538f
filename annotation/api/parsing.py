"""The API's request parser: bodies and query strings whose text PostgreSQL can store, or a 400 naming the field."""
from __future__ import annotations

import json

from ninja.parser import Parser

from annotation.api.creation import FieldError


class StorableJson(Parser):
    """Bodies and query strings whose text PostgreSQL can store: a NUL character or a lone surrogate is refused,
    naming its field."""

    def parse_body(self, request):
        data = json.loads(request.body)
        _check_storable(data, "")
        return data

    def parse_querydict(self, data, list_fields, request):
        parsed = super().parse_querydict(data, list_fields, request)
        _check_storable(parsed, "")
        return parsed


def _check_storable(value, path: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise FieldError(path or "body", "the NUL character (\\u0000) is not allowed in text")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise FieldError(path or "body", "not valid Unicode text (a lone surrogate)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, path or "body")
            _check_storable(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_storable(item, f"{path}.{i}" if path else str(i))
