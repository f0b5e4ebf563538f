"""Answer schema fields: each cleans one raw form value or raises ``ValueError`` with the reason."""
from __future__ import annotations

import math
import re
from typing import Any

import attrs

#: C0/C1 control characters other than tab, line feed and carriage return (NUL included: PostgreSQL refuses it).
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: Lone surrogates (a JSON body may carry one escaped): not Unicode text, and PostgreSQL's JSON refuses them.
SURROGATE_RE = re.compile(r"[\ud800-\udfff]")


def _is_blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip() == "")


@attrs.frozen
class ChoiceField:
    """One value out of a fixed set."""

    name: str
    choices: tuple[str, ...]
    labels: tuple[str, ...] = ()
    required: bool = True
    widget: str = "choice"

    def options(self) -> list[tuple[str, str]]:
        labels = self.labels or self.choices
        return list(zip(self.choices, labels))

    def clean(self, raw: Any) -> str | None:
        if _is_blank(raw):
            if self.required:
                raise ValueError("this field is required")
            return None
        if not isinstance(raw, str) or raw not in self.choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(self.choices)}")
        return raw


@attrs.frozen
class TextField:
    """Free text, stripped, with length bounds."""

    name: str
    required: bool = False
    min_length: int = 0
    max_length: int = 2000
    widget: str = "text"

    def clean(self, raw: Any) -> str:
        if raw is None:
            raw = ""
        if not isinstance(raw, str):
            raise ValueError("must be text")
        if bad := CONTROL_RE.search(raw):
            raise ValueError(f"contains the control character U+{ord(bad.group()):04X}; remove it and send again")
        if bad := SURROGATE_RE.search(raw):
            raise ValueError(f"contains U+{ord(bad.group()):04X}, half of a surrogate pair: not valid Unicode text")
        value = raw.strip()
        if not value and self.required:
            raise ValueError("this field is required")
        if value and len(value) < self.min_length:
            raise ValueError(f"must be at least {self.min_length} characters")
        if len(value) > self.max_length:
            raise ValueError(f"must be at most {self.max_length} characters")
        return value


@attrs.frozen
class IntField:
    """An integer within [minimum, maximum], e.g. a confidence rating."""

    name: str
    minimum: int
    maximum: int
    required: bool = True
    widget: str = "scale"

    def options(self) -> list[int]:
        return list(range(self.minimum, self.maximum + 1))

    def clean(self, raw: Any) -> int | None:
        if _is_blank(raw):
            if self.required:
                raise ValueError("this field is required")
            return None
        if isinstance(raw, bool):
            raise ValueError("must be a whole number")
        try:
            value = int(raw) if not isinstance(raw, float) or raw.is_integer() else None
        except (TypeError, ValueError):
            value = None
        if value is None:
            raise ValueError(f"{raw!r} is not a whole number")
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"must be between {self.minimum} and {self.maximum}")
        return value


@attrs.frozen
class PointField:
    """A location on the shown image as ``"x,y"``, each a fraction of the width/height in [0, 1]."""

    name: str
    required: bool = False
    widget: str = "point"
    legend: str = "Where is it?"
    hint: str = "click on the picture, or pick a region"

    def clean(self, raw: Any) -> list[float] | None:
        if _is_blank(raw):
            if self.required:
                raise ValueError("click on the image to mark the location")
            return None
        if isinstance(raw, (list, tuple)):
            parts = list(raw)
        elif isinstance(raw, str):
            parts = raw.split(",")
        else:
            raise ValueError("must be two numbers 'x,y'")
        try:
            point = [float(p) for p in parts]
        except (TypeError, ValueError):
            point = []
        if len(point) != 2 or not all(math.isfinite(v) for v in point):
            raise ValueError(f"{raw!r} is not a location 'x,y'")
        if not all(0.0 <= v <= 1.0 for v in point):
            raise ValueError("the location must lie on the image (x and y between 0 and 1)")
        return [round(v, 4) for v in point]


Field = ChoiceField | TextField | IntField | PointField
