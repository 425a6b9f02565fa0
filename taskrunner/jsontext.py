"""Strict JSON text in: what the API and the CLI accept as JSON.

Stricter than `json.loads` where it matters for data that must be stored and compared:
`NaN` and `Infinity` are not JSON numbers and are refused; integers longer than Python
converts safely are refused with a message a client can act on; `-0.0` is read as `0.0`
(PostgreSQL's JSONB keeps no negative zero, and a task must read back as it was written);
a value nested deeper than `MAX_DEPTH` is refused.

Why `MAX_DEPTH` is 64: it is the flow reader's own limit (`flowfile.reader.MAX_DEPTH`),
far deeper than any task input people write, and far below the recursion limits of the
code that walks a value recursively once it is admitted: Pydantic validates and serializes
about 255 levels, `json.dumps` about 1,500, Python code 1,000. A flow's `args` (themselves
at most 64 deep) can wrap an input value or a tool's output, so a tool's arguments nest at
most 128 levels, still half of Pydantic's limit.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Final, NamedTuple, cast

from pydantic import JsonValue

from taskrunner.errors import JsonTextError

MAX_DIGITS: Final = sys.get_int_max_str_digits() or 4300
MAX_DEPTH: Final = 64
"""How deeply arrays and objects may nest in a JSON value (a scalar is 0, `[1]` is 1)."""
MAX_POINTER_SHOWN: Final = 200
"""How many characters of a JSON pointer a message shows (keys can be long)."""
_CONTAINERS: Final = (dict, list)  # a tuple: `isinstance` checks it faster than a union


class JsonFault(NamedTuple):
    """Where a value breaks a rule: `pointer` (JSON pointer), and whether it nests too
    deeply there (else the text at `pointer` was refused)."""

    pointer: str
    too_deep: bool


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
        raise JsonTextError(f"the JSON nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError among them
        raise JsonTextError(f"not valid JSON: {exc}") from None
    fault = find_fault(value)
    if fault is not None:
        raise JsonTextError(
            f"the JSON nests deeper than {MAX_DEPTH} levels (at {shown_pointer(fault.pointer)})"
        )
    return value


def find_fault(
    value: object, text_ok: Callable[[str], bool] | None = None, max_depth: int = MAX_DEPTH
) -> JsonFault | None:
    """The first place, in document order, where `value` nests deeper than `max_depth` or
    holds a string (or key) that `text_ok` refuses. Iterative, so that no value is too deep
    to be checked, and linear in the size of the value: a quick pass level by level says
    whether there is a fault at all; only then does a second pass find the first one."""
    if _sound(value, text_ok, max_depth):
        return None
    return _first_fault(value, text_ok, max_depth)


def _sound(value: object, text_ok: Callable[[str], bool] | None, max_depth: int) -> bool:
    if isinstance(value, str):
        return text_ok is None or text_ok(value)
    level: list[object] = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            return False
        below: list[object] = []
        for container in level:
            if isinstance(container, dict):
                if (
                    text_ok is not None
                    and container
                    and not all(map(text_ok, _text_keys(container)))
                ):
                    return False
                members: Iterable[object] = container.values()
            else:
                members = cast(list[object], container)
            for item in members:
                if isinstance(item, str):
                    if text_ok is not None and not text_ok(item):
                        return False
                elif isinstance(item, _CONTAINERS):
                    below.append(item)
        level = below
    return True


def _first_fault(
    value: object, text_ok: Callable[[str], bool] | None, max_depth: int
) -> JsonFault | None:
    # The stack holds the members still to see of each open container, under a root that
    # holds `value` alone; `keys` the key of each open container.
    stack: list[Iterator[tuple[object, object]]] = [iter([(None, value)])]
    keys: list[object] = []

    def pointer(last: object) -> str:
        return "".join(f"/{key}" for key in [*keys, last] if key is not None) or "/"

    while stack:
        for key, item in stack[-1]:
            if text_ok is not None and isinstance(key, str) and not text_ok(key):
                return JsonFault(pointer(key), too_deep=False)
            if isinstance(item, str):
                if text_ok is not None and not text_ok(item):
                    return JsonFault(pointer(key), too_deep=False)
            elif isinstance(item, _CONTAINERS):
                if len(stack) > max_depth:
                    return JsonFault(pointer(key), too_deep=True)
                if item:
                    stack.append(_members(item))
                    keys.append(key)
                    break
        else:
            stack.pop()
            if keys:
                keys.pop()
    return None


def _text_keys(container: dict[object, object]) -> Iterable[str]:
    return (key for key in container if isinstance(key, str))


def shown_pointer(pointer: str) -> str:
    """`pointer`, shortened in the middle when it is too long to show in a message."""
    if len(pointer) <= MAX_POINTER_SHOWN:
        return pointer
    half = MAX_POINTER_SHOWN // 2
    return f"{pointer[:half]}…{pointer[-half:]}"


def _members(container: dict[object, object] | list[object]) -> Iterator[tuple[object, object]]:
    return iter(container.items()) if isinstance(container, dict) else enumerate(container)


def _refuse_constant(name: str) -> object:
    raise JsonTextError(f"{name} is not a JSON number")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise JsonTextError(f"a number has more than {MAX_DIGITS:,} digits")
    return int(text)


def _real(text: str) -> float:
    value = float(text)
    return 0.0 if value == 0 else value
