"""How large an output may be, measured as the database stores it: compact JSON, in UTF-8.

A tool may return anything its model allows, and a flow's output is built from the outputs
of its states; without a bound, one runaway tool fills the database and every answer that
shows the task. A step's output past `MAX_OUTPUT_BYTES` fails the step with
`OutputTooLarge` (which `retry` and `catch` match like any error kind); a task's output
past it fails the task with the same kind. Nothing larger is ever stored. With at most
`interpreter.MAX_STEPS` steps, a task's history is bounded too.
"""

from __future__ import annotations

import json
from typing import Final

MAX_OUTPUT_BYTES: Final = 256 * 1024
OUTPUT_TOO_LARGE: Final = "OutputTooLarge"


_COMPACT: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""Made once: `json.dumps` with options makes an encoder at every call."""


def oversize(value: object, limit: int = MAX_OUTPUT_BYTES) -> str | None:
    """Why `value` is too large to store as an output, if it is."""
    text = _COMPACT.encode(value)
    size = len(text) if text.isascii() else len(text.encode())
    if size <= limit:
        return None
    return f"{what_size(size)} as JSON, over the limit of {what_size(limit)}"


def what_size(size: int) -> str:
    return f"{size:,} bytes" if size < 1024 else f"{size / 1024:,.1f} KiB ({size:,} bytes)"
