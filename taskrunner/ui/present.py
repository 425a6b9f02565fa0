"""How values read on a page: times with their zone, durations, data pretty-printed (and
cut short when large), a choice's decision in words, a step timeline's proportions.
Pure functions; the templates use them as filters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from taskrunner.store.records import TASK_STATUSES
from taskrunner.views import StepView

MAX_SHOWN_CHARS: Final = 20_000
"""How much of a payload a page shows; the API has the rest."""
CHOICE_TOOL: Final = "choice"


def iso_time(moment: datetime | None) -> str:
    """The moment in UTC, to the second, ISO 8601 with its zone: `2026-01-02T03:04:05Z`."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def duration(seconds: float | None) -> str:
    """`12 ms`, `3.4 s`, `2 min 5 s`, `1 h 2 min`; empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@dataclass(frozen=True)
class Shown:
    """Data pretty-printed for a page; `cut` says how many characters were left out."""

    text: str
    cut: int = 0


def pretty(data: object, limit: int = MAX_SHOWN_CHARS) -> Shown:
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False)
    if len(text) <= limit:
        return Shown(text)
    return Shown(text[:limit], len(text) - limit)


def choice_decision(step: StepView) -> str | None:
    """What a choice state decided, in words; None for a step of a tool."""
    if step.tool != CHOICE_TOOL or not isinstance(step.output, dict):
        return None
    rule, target = step.output.get("rule"), step.output.get("next")
    if rule == "default":
        return f"no rule matched → default → {target}"
    return f"rule {rule} matched → {target}"


@dataclass(frozen=True)
class TimelineBar:
    """Where a step's bar sits on the task's timeline, in percent of the whole."""

    offset: float
    width: float


def timeline(steps: Sequence[StepView]) -> list[TimelineBar]:
    """A bar per step, placed by its start and sized by its duration, so that waits and
    retry delays between steps show as gaps."""
    if not steps:
        return []
    start = min(step.started_at for step in steps)
    end = max(step.finished_at for step in steps)
    total = (end - start).total_seconds() or 1.0
    bars = []
    for step in steps:
        offset = (step.started_at - start).total_seconds() / total * 100
        width = (step.finished_at - step.started_at).total_seconds() / total * 100
        bars.append(TimelineBar(round(offset, 2), round(max(width, 0.5), 2)))
    return bars


def short_id(value: object) -> str:
    return str(value)[:8]


FILTERS: Final[dict[str, Any]] = {
    "iso": iso_time,
    "duration": duration,
    "pretty": pretty,
    "short_id": short_id,
    "decision": choice_decision,
}
GLOBALS: Final[dict[str, Any]] = {
    "seconds_between": seconds_between,
    "timeline": timeline,
    "statuses": TASK_STATUSES,
}
