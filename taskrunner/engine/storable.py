"""What a database can store: the rule every input and output of a task must meet."""

from __future__ import annotations

from taskrunner.jsontext import MAX_DEPTH, JsonFault, find_fault, shown_pointer


def unstorable(value: object) -> JsonFault | None:
    """Where `value` first holds what a database cannot store, if anywhere: a string (or
    key) with the NUL character, which PostgreSQL refuses in text and JSONB, or with a lone
    UTF-16 surrogate (which JSON's `\\ud800` escapes can produce), which no database
    stores; or nesting deeper than `MAX_DEPTH`, which the code that stores and shows
    values does not walk safely."""
    if type(value) is dict and _flat_and_storable(value):
        return None  # most outputs: one level of scalars, checked without the walk
    return find_fault(value, _storable)


def _flat_and_storable(value: dict[object, object]) -> bool:
    """Whether `value` holds scalars only, every key and string storable."""
    for key, item in value.items():
        if type(key) is not str or not _storable(key):
            return False
        kind = type(item)
        if kind is str:
            if not _storable(item):  # type: ignore[arg-type]
                return False
        elif kind not in _SCALARS:
            return False
    return True


def fault_message(fault: JsonFault, what: str) -> str:
    """`what` (such as "the output") and where it breaks the rule, for a message."""
    where = shown_pointer(fault.pointer)
    if fault.too_deep:
        return f"{what} nests deeper than {MAX_DEPTH} levels (at {where})"
    return f"{what} at {where} holds text the database cannot store"


_SCALARS = frozenset({int, float, bool, type(None)})


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
