"""Strict JSON text in: what the API and the CLI accept as JSON.

Stricter than `json.loads` where it matters for data that must be stored and compared:
`NaN` and `Infinity` are not JSON numbers and are refused; integers longer than Python
converts safely are refused with a message a client can act on; `-0.0` is read as `0.0`
(PostgreSQL's JSONB keeps no negative zero, and a task must read back as it was written);
nesting too deep for the parser is refused rather than crashing it.
"""

from __future__ import annotations

import json
import sys
from typing import Final

from pydantic import JsonValue

from taskrunner.errors import JsonTextError

MAX_DIGITS: Final = sys.get_int_max_str_digits() or 4300


def parse_json(text: str | bytes) -> JsonValue:
    try:
        value: JsonValue = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_int=_integer,
            parse_float=_real,
        )
    except JsonTextError:
        raise
    except RecursionError:
        raise JsonTextError("the JSON nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError among them
        raise JsonTextError(f"not valid JSON: {exc}") from None
    return value


def _refuse_constant(name: str) -> object:
    raise JsonTextError(f"{name} is not a JSON number")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise JsonTextError(f"a number has more than {MAX_DIGITS:,} digits")
    return int(text)


def _real(text: str) -> float:
    value = float(text)
    return 0.0 if value == 0 else value
