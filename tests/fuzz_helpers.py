"""Strategies shared by the fuzz tests: bounded settings, text with Unicode edge cases, any JSON value, and
values drawn from a JSON schema (a small stand-in for hypothesis-jsonschema, which is not installed)."""
from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
#: Strings a database or a browser may trip on: NUL, lone surrogates, direction overrides, a BOM, combining
#: marks, astral characters, line separators, blank ones.
EDGE_STRINGS = ["", " ", "\t\n", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u202eevil", "\ufeffbom", "e\u0301",
                "\U0001d54a\U0001f600", "a\u2028b", "\u0000\u0000", "null", "0", "-1", "1e309", "NaN", "\u00b2",
                "1\u0663",
                "99999999999999999999999", "../x", "%00", "a" * 1000]
edge_text = st.sampled_from(EDGE_STRINGS) | text
scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | text
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text, inner, max_size=4), max_leaves=12)

BIG = 2**70  # JSON integers have no bound: beyond 64 bits too
EDGE_INTEGERS = [0, 1, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, -2**63 - 1, BIG]


def from_schema(schema: dict, document: dict, examples: dict[str, list] | None = None, name: str = "",
                depth: int = 0) -> st.SearchStrategy:
    """Values valid for a JSON schema (types, ``anyOf``, ``enum``, bounds, ``$ref`` into ``document``).

    ``examples`` maps a property or parameter name to known values mixed in (ids that exist, file names).
    """
    known = st.sampled_from(examples[name]) if examples and examples.get(name) else None
    drawn = _from_schema(schema, document, examples, depth)
    return known | drawn if known is not None else drawn


def _from_schema(schema: dict, document: dict, examples, depth: int) -> st.SearchStrategy:
    if "$ref" in schema:
        target: Any = document
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _from_schema(target, document, examples, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([_from_schema(s, document, examples, depth) for s in schema[key]])
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _from_schema(schema["allOf"][0], document, examples, depth)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([_from_schema({**schema, "type": k}, document, examples, depth) for k in kind])
    if kind == "string":
        if schema.get("format") == "date-time":
            return st.datetimes().map(lambda d: d.isoformat() + "Z")
        low, high = schema.get("minLength", 0), schema.get("maxLength", 1000)
        edges = [e for e in EDGE_STRINGS if low <= len(e) <= high]
        drawn = st.text(alphabet=st.characters(codec="utf-8"), min_size=low, max_size=min(high, 40))
        return st.sampled_from(edges) | drawn if edges else drawn
    if kind == "integer":
        low, high = schema.get("minimum", -BIG), schema.get("maximum", BIG)
        edges = [e for e in EDGE_INTEGERS if low <= e <= high]
        return st.sampled_from(edges) | st.integers(low, high) if edges else st.integers(low, high)
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(_from_schema(schema.get("items", {}), document, examples, depth + 1), max_size=3)
    if kind == "object" or "properties" in schema:
        return _object(schema, document, examples, depth)
    return json_values  # no type: anything


def _object(schema: dict, document: dict, examples, depth: int) -> st.SearchStrategy:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    fixed = {k: from_schema(v, document, examples, k, depth + 1) for k, v in properties.items() if k in required}
    optional = {k: from_schema(v, document, examples, k, depth + 1) for k, v in properties.items() if k not in required}
    extra = schema.get("additionalProperties")
    body = st.fixed_dictionaries(fixed, optional=optional)
    if isinstance(extra, dict) and depth < 4:
        more = st.dictionaries(text, _from_schema(extra, document, examples, depth + 1), max_size=3)
        return st.tuples(body, more).map(lambda pair: {**pair[1], **pair[0]})
    return body
