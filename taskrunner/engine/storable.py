"""What text a database can store: the rule every input and output of a task must meet."""

from __future__ import annotations


def unstorable_text(value: object, path: str = "") -> str | None:
    """The JSON pointer of the first string (or key) that a database cannot store, if any:
    PostgreSQL refuses the NUL character in text and JSONB, and no database stores lone
    UTF-16 surrogates (which JSON's `\\ud800` escapes can produce)."""
    if isinstance(value, str):
        return None if _storable(value) else path or "/"
    if isinstance(value, dict):
        for key, item in value.items():
            if not _storable(key):
                return f"{path}/{key}"
            if isinstance(item, str | dict | list):
                found = unstorable_text(item, f"{path}/{key}")
                if found is not None:
                    return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str | dict | list):
                found = unstorable_text(item, f"{path}/{index}")
                if found is not None:
                    return found
    return None


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
