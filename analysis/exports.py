"""Writing result tables: CSV, JSON records, and a zip archive of a study's exports."""
from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping

import pandas as pd


def _jsonable(value):
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def table_to_csv(table: pd.DataFrame) -> str:
    return table.to_csv(index=False, lineterminator="\n")


def records_to_json(records: list[Mapping]) -> str:
    return json.dumps(records, default=_jsonable, indent=1, ensure_ascii=False)


def archive_bytes(files: Mapping[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()
