"""Class metadata files: class index, folder (e.g. WordNet id), name, description.

Accepted layouts (column / key names are matched case-insensitively):

* CSV or TSV with a header: a plain list ``index,folder,name`` with optional ``synonyms``,
  ``supercategory``, ``definition`` and ``links`` -- aliases: ``class_index``/``idx``/``label``;
  ``folder``/``synset``/``wnid``; ``class_name``/``synset_name``/``label_name``;
  ``definition``/``gloss``; ``wikilinks`` for ``links``;
* the Salient ImageNet repository's ``class_metadata.csv`` as published (``class_index, synset,
  wordnet_id, gloss, wikilinks, supercategory, val_sample_paths``): there ``wordnet_id`` is the
  folder and ``synset`` the comma-separated synonyms, the first being the name; list columns are
  Python-style lists;
* JSON: a list of objects with those keys, or an object mapping the index to
  either a name, ``[folder, name]`` (torchvision's ``imagenet_class_index.json``)
  or an object with the keys above.
"""
from __future__ import annotations

import ast
import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs

_ALIASES = {
    "index": ("index", "class_index", "idx", "label", "class_id", "id"),
    "folder": ("folder", "wnid", "synset", "synset_id", "directory", "dir"),
    "name": ("name", "class_name", "synset_name", "label_name", "classname", "title"),
    "description": ("description", "definition", "gloss", "desc"),
    "synonyms": ("synonyms",),
    "supercategory": ("supercategory", "super_category"),
    "links": ("links", "wikilinks"),
}
#: Columns that are read but not kept.
_IGNORED = ("val_sample_paths",)


class ClassMetadataError(ValueError):
    """A class-metadata file that cannot be interpreted."""


@attrs.frozen
class ClassInfo:
    """One class: output index, image folder name, readable name and description."""

    index: int
    name: str
    folder: str = ""
    description: str = ""
    synonyms: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    supercategory: str = ""
    links: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "synonyms": list(self.synonyms), "links": list(self.links)}


def _pick(row: Mapping[str, Any], field: str) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in row.items()}
    for alias in _ALIASES[field]:
        if alias in lowered and lowered[alias] not in (None, ""):
            return lowered[alias]
    return None


def _as_list(value: Any) -> list[str]:
    """A Python-style list (``"['a', 'b']"``), a list, or a comma-separated string, as strings."""
    if value in (None, ""):
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            return [str(v).strip() for v in ast.literal_eval(text)]
        except (ValueError, SyntaxError) as exc:
            raise ClassMetadataError(f"cannot read the list {text[:80]!r}") from exc
    return [p.strip() for p in text.split(",") if p.strip()]


def _check_columns(columns: Iterable[Any], source: str) -> None:
    known = {a for aliases in _ALIASES.values() for a in aliases} | {"wordnet_id", *_IGNORED}
    unknown = sorted(str(c) for c in columns if str(c).strip().lower() not in known)
    if unknown:
        raise ClassMetadataError(f"{source}: unknown column(s) {', '.join(unknown)}; known columns: "
                                 f"{', '.join(sorted(known))}")


def _salient_layout(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The Salient ImageNet layout: ``wordnet_id`` is the folder and ``synset`` the synonyms."""
    lowered = {str(k).strip().lower(): v for k, v in row.items()}
    if "wordnet_id" not in lowered:
        return row
    synonyms = _as_list(lowered.pop("synset", ""))
    lowered["folder"] = lowered.pop("wordnet_id")
    lowered["synonyms"] = synonyms
    lowered.setdefault("name", synonyms[0] if synonyms else lowered["folder"])
    return lowered


def _from_rows(rows: Iterable[Mapping[str, Any]], source: str) -> list[ClassInfo]:
    infos = []
    for position, row in enumerate(rows):
        _check_columns(row.keys(), source)
        row = _salient_layout(row)
        index, folder, name = _pick(row, "index"), _pick(row, "folder"), _pick(row, "name")
        if index is None:
            index = position
        if name is None and folder is None:
            raise ClassMetadataError(f"{source}: row {position} has neither a name nor a folder column")
        try:
            index = int(index)
        except (TypeError, ValueError) as exc:
            raise ClassMetadataError(f"{source}: row {position} has a non-integer index {index!r}") from exc
        try:
            synonyms, links = _as_list(_pick(row, "synonyms")), _as_list(_pick(row, "links"))
        except ClassMetadataError as exc:
            raise ClassMetadataError(f"{source}: row {position}: {exc}") from exc
        infos.append(ClassInfo(index=index, name=str(name if name is not None else folder),
                               folder=str(folder if folder is not None else name),
                               description=str(_pick(row, "description") or ""), synonyms=synonyms,
                               supercategory=str(_pick(row, "supercategory") or ""), links=links))
    return _validated(infos, source)


def _validated(infos: list[ClassInfo], source: str) -> list[ClassInfo]:
    infos = sorted(infos, key=lambda c: c.index)
    indices = [c.index for c in infos]
    repeated = sorted({i for i in indices if indices.count(i) > 1})
    if repeated:
        raise ClassMetadataError(f"{source}: class index {repeated[0]} is given twice")
    if indices != list(range(len(infos))):
        raise ClassMetadataError(f"{source}: class indices must be 0..{len(infos) - 1} without gaps or repeats")
    folders = [c.folder for c in infos]
    if len(set(folders)) != len(folders):
        raise ClassMetadataError(f"{source}: folder names must be unique")
    return infos


def parse_class_metadata(text: str, fmt: str, source: str = "<metadata>") -> list[ClassInfo]:
    """Parse metadata ``text`` in format ``"csv"``, ``"tsv"`` or ``"json"``."""
    fmt = fmt.lower().lstrip(".")
    if fmt in ("csv", "tsv", "txt"):
        dialect_delim = "\t" if fmt == "tsv" or ("\t" in text.splitlines()[0] if text else False) else ","
        reader = csv.DictReader(io.StringIO(text), delimiter=dialect_delim)
        return _from_rows(reader, source)
    if fmt == "json":
        data = json.loads(text)
        if isinstance(data, list):
            return _from_rows(data, source)
        if isinstance(data, Mapping):
            rows = []
            for key, value in data.items():
                if isinstance(value, str):
                    rows.append({"index": key, "name": value})
                elif isinstance(value, (list, tuple)) and len(value) == 2:
                    rows.append({"index": key, "folder": value[0], "name": value[1]})
                elif isinstance(value, Mapping):
                    rows.append({"index": key, **value})
                else:
                    raise ClassMetadataError(f"{source}: cannot read the entry for {key!r}")
            return _from_rows(rows, source)
        raise ClassMetadataError(f"{source}: JSON must be a list or an object")
    raise ClassMetadataError(f"{source}: unsupported metadata format {fmt!r} (use csv, tsv or json)")


def read_class_metadata(path: str | os.PathLike) -> list[ClassInfo]:
    """Read a class-metadata file (format from the extension: .csv, .tsv, .json)."""
    path = Path(path)
    return parse_class_metadata(path.read_text(encoding="utf-8"), path.suffix or "csv", str(path))


def write_class_metadata(path: str | os.PathLike, classes: Iterable[ClassInfo]) -> Path:
    """Write ``classes`` as CSV (``index,folder,name,description``) or JSON by extension."""
    path = Path(path)
    classes = list(classes)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps([c.as_dict() for c in classes], indent=2), encoding="utf-8")
    else:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["index", "folder", "name", "description"])
            writer.writeheader()
            for info in classes:
                writer.writerow({"index": info.index, "folder": info.folder, "name": info.name,
                                 "description": info.description})
    return path
