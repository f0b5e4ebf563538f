"""Writing result tables: CSV (safe against formula injection), JSON records, and a zip archive of a study's exports."""
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


#: A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """``value`` with a leading ``'`` if it is text a spreadsheet would run as a formula."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value


def table_to_safe_csv(table: pd.DataFrame, **options) -> str:
    """The table as CSV, every text cell and column name neutralised by :func:`csv_cell`.

    Lines end in CRLF (RFC 4180), so that a cell holding a bare CR is quoted too: unquoted, a spreadsheet
    would start a new row there, and a formula after the CR would escape the leading-character rule.
    ``options`` go to :meth:`pandas.DataFrame.to_csv` (e.g. ``float_format``).
    """
    return table.map(csv_cell).rename(columns=csv_cell).to_csv(index=False, lineterminator="\r\n", **options)


def safe_csv_bytes(table: pd.DataFrame, **options) -> bytes:
    """:func:`table_to_safe_csv` as UTF-8 bytes: the content of a kind's CSV output file."""
    return table_to_safe_csv(table, **options).encode()


def records_to_json(records: list[Mapping]) -> str:
    return json.dumps(records, default=_jsonable, indent=1, ensure_ascii=False)


def archive_bytes(files: Mapping[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()
