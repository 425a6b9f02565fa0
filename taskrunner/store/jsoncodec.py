"""JSON text out, for the database: every number reads back as the same number.

PostgreSQL's JSONB stores numbers as `numeric`, which keeps the digits after a decimal
point but has no notion of a float. `1e+20` (Python's text for the float 1e20) would come
back as the integer 100000000000000000000. Written positionally with a fraction,
`100000000000000000000.0`, it comes back as the float it was. SQLite gets the same text.
"""

from __future__ import annotations

import json
from decimal import Decimal

from pydantic import JsonValue

_encode_string = json.encoder.encode_basestring_ascii


def dumps(value: JsonValue) -> str:
    """`value` as compact JSON, floats written so that JSONB keeps them floats."""
    if not _has_large_float(value):
        return json.dumps(value, separators=(",", ":"))
    return "".join(_encode(value))


def _has_large_float(value: JsonValue) -> bool:
    if isinstance(value, float):
        return "e+" in repr(value)
    if isinstance(value, dict):
        return any(_has_large_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_large_float(item) for item in value)
    return False


def _encode(value: JsonValue) -> list[str]:
    if isinstance(value, float):
        text = repr(value)
        if "e+" in text:
            text = format(Decimal(text), "f") + ".0"
        return [text]
    if isinstance(value, dict):
        parts = ["{"]
        for index, (key, item) in enumerate(value.items()):
            if index:
                parts.append(",")
            parts.append(_encode_string(key))
            parts.append(":")
            parts.extend(_encode(item))
        parts.append("}")
        return parts
    if isinstance(value, list):
        parts = ["["]
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            parts.extend(_encode(item))
        parts.append("]")
        return parts
    return [json.dumps(value)]
