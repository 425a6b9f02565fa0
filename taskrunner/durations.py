"""Durations as people write them in settings and options: a whole number and a unit,
`45s`, `90m`, `12h`, `30d`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

from taskrunner.errors import InvalidDurationError

UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
LONGEST: Final = timedelta(days=36_500)
"""A hundred years: anything longer is a typo, and would not fit a timestamp's range."""
_DURATION: Final = re.compile(r"([0-9]{1,12})([smhd])")


def parse_duration(text: str) -> timedelta:
    """The duration `text` says: positive, at most `LONGEST`; `InvalidDurationError` else."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise InvalidDurationError(
            f"{text!r} is not a duration: use a whole number and a unit (s, m, h or d), "
            "such as 90m, 12h or 30d"
        )
    seconds = int(found[1]) * UNIT_SECONDS[found[2]]
    if seconds == 0 or seconds > LONGEST.total_seconds():
        raise InvalidDurationError(f"{text!r}: a duration from 1s to {LONGEST.days}d")
    return timedelta(seconds=seconds)


def format_duration(duration: timedelta) -> str:
    """The shortest exact way to write `duration` in `parse_duration`'s terms."""
    seconds = int(duration.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"
