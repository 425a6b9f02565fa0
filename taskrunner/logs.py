"""The log of a taskrunner process: lines on stderr, as text for people or as JSON for a
log pipeline (`TASKRUNNER_LOG_FORMAT`), from `TASKRUNNER_LOG_LEVEL` up.

The standard library's `logging` with a formatter of our own, not a logging library:
every module already logs through `logging.getLogger("taskrunner....")`, so one handler
on the `taskrunner` logger, set once when a process starts (`configure_logging`, called
by the command line's entry point), puts them all in one format; pytest's `caplog` sees
them as it sees any record; and a formatter is thirty lines, not a dependency.

A line is an event and its fields. The fields are a record's `fields` (passed as
`extra={"fields": {...}}`, as `tasklog.py` does); a record without them is an event
whose name is its message. A JSON line has the keys `ts` (ISO 8601, with the zone),
`level`, `logger` and `event` always, then its fields; `exc` when it carries a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, TextIO

if TYPE_CHECKING:
    from taskrunner.settings import LogSettings

ROOT_LOGGER: Final = "taskrunner"


class _Formatter(logging.Formatter):
    def parts(self, record: logging.LogRecord) -> tuple[str, dict[str, object]]:
        """The record's event and fields."""
        fields: dict[str, object] = getattr(record, "fields", None) or {}
        return record.getMessage(), fields

    @staticmethod
    def timestamp(record: logging.LogRecord) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(_Formatter):
    """One JSON object per line, with stable keys."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = self.parts(record)
        line: dict[str, object] = {
            "ts": self.timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": event,
            **fields,
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(_Formatter):
    """`TS LEVEL LOGGER EVENT key=value ...`, a value quoted when it holds a space or is
    empty; a field with no value (null in JSON) is left out."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = self.parts(record)
        pairs = "".join(
            f" {key}={_text(value)}" for key, value in fields.items() if value is not None
        )
        line = f"{self.timestamp(record)} {record.levelname} {record.name} {event}{pairs}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text(value: object) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if not text or " " in text else text


class ProcessHandler(logging.Handler):
    """The handler `configure_logging` sets: one per process, replaced if set again. It
    writes to its stream, or else to `sys.stderr` as it is when a line is written (so a
    command run in-process, as tests run it, writes where its caller now reads)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = self._stream or sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging's own way: say it on stderr, go on
            self.handleError(record)


def configure_logging(
    settings: LogSettings, *, default_level: str, stream: TextIO | None = None
) -> logging.Handler:
    """Send the `taskrunner` loggers' records from `settings.level` (else `default_level`)
    up to `stream` (stderr), formatted as `settings.format` says. The command line sets it
    as it starts, and `serve` and `worker` again with their own default level: the handler
    set before is replaced. Records still reach the root logger's handlers too (those of
    a host program)."""
    reset_logging()
    handler = ProcessHandler(stream)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    logger = logging.getLogger(ROOT_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(settings.level or default_level)
    return handler


def reset_logging() -> None:
    """Undo `configure_logging`: the `taskrunner` loggers as they were before."""
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, ProcessHandler):
            logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
