"""Inserting many rows of one model at once: PostgreSQL's COPY, else ``bulk_create``.

Django's ``bulk_create`` builds a model instance and prepares every field of every row in Python (and on
PostgreSQL sends each column as an array literal that psycopg quotes character by character): for the
25,000 rows of an MTurk batch file that took most of an import (``bench/import_mturk.py --profile``).
COPY streams the rows instead; values that are the same on every row are prepared once.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection, models

#: Rows per ``bulk_create`` batch where COPY is not available.
BATCH = 5000


def bulk_insert(model: type[models.Model], values: Mapping[str, Any], n: int, *, now, ids: bool = False
                ) -> list[int] | None:
    """Insert ``n`` rows of ``model``: ``values`` maps a field's attname to a list of ``n`` values, or to one
    value for every row; other fields take their default (``auto_now``/``auto_now_add`` ones ``now``).
    Returns the new primary keys, in row order, when ``ids``."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns: dict[str, Any] = {}
    for field in fields:
        if field.attname in values:
            columns[field.attname] = values[field.attname]
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            columns[field.attname] = now
        elif field.has_default() or field.null:
            columns[field.attname] = field.get_default()
        else:
            raise ValueError(f"{model.__name__}.{field.attname} has no value and no default")
    unknown = set(values) - set(columns)
    if unknown:
        raise ValueError(f"{model.__name__} has no field(s) {', '.join(sorted(unknown))}")
    per_row = {k for k, v in columns.items() if isinstance(v, list)}
    if any(len(columns[k]) != n for k in per_row):
        raise ValueError("every list of values must have one value per row")
    if connection.vendor != "postgresql":
        objects = model._default_manager.bulk_create(
            [model(**{k: (v[i] if k in per_row else v) for k, v in columns.items()}) for i in range(n)],
            batch_size=BATCH)
        return [o.pk for o in objects] if ids else None
    return _copy(model, fields, columns, per_row, n, ids)


def _copy(model, fields: Sequence[models.Field], columns: dict[str, Any], per_row: set[str], n: int,
          ids: bool) -> list[int] | None:
    table = model._meta.db_table
    pk = model._meta.pk
    keys: list[int] = []
    with connection.cursor() as cursor:
        if ids:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                           [table, pk.column, n])
            keys = [row[0] for row in cursor.fetchall()]
        names = ([pk.column] if ids else []) + [f.column for f in fields]
        # JSON columns go as their text (COPY's text format); constant values are prepared once.
        lists = [keys] if ids else []
        for field in fields:
            value = columns[field.attname]
            if field.attname in per_row:
                lists.append([_json(v) for v in value] if isinstance(field, models.JSONField) else value)
            else:
                prepared = (_json(value) if isinstance(field, models.JSONField)
                            else field.get_db_prep_save(value, connection))
                lists.append([prepared] * n)
        sql = f'COPY "{table}" ({", ".join(f"{chr(34)}{c}{chr(34)}" for c in names)}) FROM STDIN'
        with cursor.cursor.copy(sql) as copy:
            for row in zip(*lists):
                copy.write_row(row)
    return keys if ids else None


def _json(value) -> str | None:
    return None if value is None else json.dumps(value)
