"""Settings typed by a researcher (JSON overrides) turned into an attrs config, or a clear error naming the setting.

``BenchmarkConfig(**overrides)`` alone answers a misspelt key with ``__init__() got an unexpected keyword
argument`` and a string where a number belongs with a comparison error deep in a validator; the study
form, the API and the jobs call :func:`config_from_overrides` instead, so all of them refuse the same
input with the same sentence.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

C = TypeVar("C")

#: The JSON values each annotated type accepts (a JSON array for a tuple; ``True`` is not a number here).
_ACCEPTS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
                                         "None": (type(None),)}


def _accepted(annotation: str) -> tuple[type, ...] | None:
    """The Python types of a JSON value for a field annotated ``annotation`` (None: not checked here)."""
    accepted: tuple[type, ...] = ()
    for part in (p.strip() for p in annotation.split("|")):
        if part.startswith(("tuple", "list")):
            accepted += (list, tuple)
        elif part in _ACCEPTS:
            accepted += _ACCEPTS[part]
        else:
            return None
    return accepted


def _type_problem(name: str, value: Any, annotation: str) -> str | None:
    accepted = _accepted(annotation)
    if accepted is None or isinstance(value, accepted) and not (isinstance(value, bool) and bool not in accepted):
        return None
    return f"{name} must be {annotation.replace(' | None', ' or null')}, got {value!r}"


def config_from_overrides(config_class: type[C], overrides: Mapping[str, Any] | None, what: str,
                          factory: Callable[..., C] | None = None) -> C:
    """``factory(**overrides)`` (default: the class itself), or ``ValueError`` naming ``what`` and the setting.

    Refused: a key that is not one of the class's fields, a value of the wrong JSON type, and whatever the
    class's own validators refuse (their message, prefixed with ``what``).
    """
    overrides = dict(overrides or {})
    fields = {f.name: f for f in attrs.fields(config_class)}
    for name, value in overrides.items():
        if name not in fields:
            raise ValueError(f"{what}: unknown setting {name!r}; the settings are {', '.join(fields)}")
        if problem := _type_problem(name, value, str(fields[name].type)):
            raise ValueError(f"{what}: {problem}")
    try:
        return (factory or config_class)(**overrides)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: {exc}") from exc
