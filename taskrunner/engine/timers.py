"""The steps of a wait state, and the timestamps they carry.

A wait is two steps of the state, both with the tool name `wait` (a name no registered
tool may take): the first, when the wait begins, fixes the wake time and records it as its
output (`{"until": "2026-01-31T09:00:00Z"}`); the second, made not before that time,
records that the wait is over. Because the wake time is in the history from the first
step on, a task resumed mid-wait (another worker, a restart) waits only for what is left,
and a replay reaches the same decisions. Only the first step of a wait of `seconds` needs
the time: the driver passes it in (`timer_step`), so the engine reads no clock itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

from taskrunner.engine.steps import CallTool, Step

WAIT_TOOL: Final = "wait"
"""The tool name of a wait state's steps; `ToolRegistry` refuses a tool of that name."""
INVALID_WAIT: Final = "InvalidWait"
"""A wait whose referenced `seconds` or `until` is not a valid duration or timestamp."""
MAX_WAIT_SECONDS: Final = 31_536_000
"""The longest wait, and the longest `timeout_seconds` of a flow: 365 days."""

_RFC_3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(text: str) -> datetime | None:
    """The moment an RFC 3339 timestamp with an offset names, or None when `text` is not
    one (no offset, a date alone, a month 13...)."""
    if not _RFC_3339.match(text):
        return None
    whole, _, rest = text.upper().replace(" ", "T").partition(".")
    if rest:
        # Python reads at most microseconds: drop the digits past them.
        digits = re.match(r"\d+", rest)
        fraction = digits.group() if digits else ""
        whole = f"{whole}.{fraction[:6]}{rest[len(fraction) :]}"
    try:
        return datetime.fromisoformat(whole)
    except ValueError:
        return None


def format_timestamp(moment: datetime) -> str:
    """`moment` in UTC, as RFC 3339 with a `Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def timer_step(call: CallTool, now: datetime) -> Step:
    """The step a wait state's call records, made at `now`: the wake time, from `seconds`
    after now or from `until` (the wait state has checked both before asking)."""
    seconds = call.arguments.get("seconds")
    until = call.arguments.get("until")
    wake: datetime | None = None
    if isinstance(seconds, int | float):
        wake = now + timedelta(seconds=seconds)
    elif isinstance(until, str):
        wake = parse_timestamp(until)
    if wake is None:
        raise ValueError(f"a wait step needs `seconds` or `until`, not {call.arguments!r}")
    return call.succeeded({"until": format_timestamp(wake)})
