"""What a database can store: the rule every input and output of a task must meet."""

from __future__ import annotations

from taskrunner.jsontext import MAX_DEPTH, JsonFault, find_fault, shown_pointer


def unstorable(value: object) -> JsonFault | None:
    """Where `value` first holds what a database cannot store, if anywhere: a string (or
    key) with the NUL character, which PostgreSQL refuses in text and JSONB, or with a lone
    UTF-16 surrogate (which JSON's `\\ud800` escapes can produce), which no database
    stores; or nesting deeper than `MAX_DEPTH`, which the code that stores and shows
    values does not walk safely."""
    return find_fault(value, _storable)


def fault_message(fault: JsonFault, what: str) -> str:
    """`what` (such as "the output") and where it breaks the rule, for a message."""
    where = shown_pointer(fault.pointer)
    if fault.too_deep:
        return f"{what} nests deeper than {MAX_DEPTH} levels (at {where})"
    return f"{what} at {where} holds text the database cannot store"


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
