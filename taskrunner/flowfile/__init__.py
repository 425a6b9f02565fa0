"""Flow files: from bytes on disk (or in a request) to a checked flow and located problems."""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from pydantic import JsonValue

from taskrunner.engine.diagnostics import Severity
from taskrunner.engine.flow import Flow
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import UnreadableFlowFileError, clipped
from taskrunner.flowfile.reader import MAX_BYTES, ReadError, read_document

MAX_PROBLEMS: Final = 100
"""How many problems a report lists, the first by position; it counts the rest
(`FlowReport.omitted`). A megabyte of YAML can hold a hundred thousand problems."""
MAX_MESSAGE_CHARS: Final = 500
"""How long a problem's message may be, and its hint: they can quote the document."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A diagnostic placed in a file: what `validate-flow` prints, one per line."""

    file: str
    line: int
    column: int
    code: str
    path: str
    message: str
    hint: str | None
    severity: Severity = "error"

    def __str__(self) -> str:
        # Errors keep the historical form that scripts parse; a warning says so.
        marked = f"warning {self.code}" if self.severity == "warning" else self.code
        text = f"{self.file}:{self.line}:{self.column}: {marked} {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def as_json(self) -> dict[str, JsonValue]:
        return asdict(self)


@dataclass(frozen=True)
class FlowReport:
    file: str
    flow: Flow | None
    problems: list[Problem]
    """At most `MAX_PROBLEMS`, the first by position; warnings among them. A report with a
    flow has warnings only."""
    omitted: int = 0
    """How many more problems there were."""

    @property
    def errors(self) -> list[Problem]:
        return [item for item in self.problems if item.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [item for item in self.problems if item.severity == "warning"]

    def omitted_marker(self) -> Problem | None:
        """The problems left out, as one entry of a list of problems (`--json`)."""
        if not self.omitted:
            return None
        message = f"... and {self.omitted:,} more problem(s), not listed"
        return Problem(self.file, 0, 0, "report.omitted", "", message, None)


def check_source(raw: bytes, file: str, checker: FlowChecker) -> FlowReport:
    """Read and check one flow document; every problem is located by line and column."""
    try:
        document = read_document(raw)
    except ReadError as exc:
        line, column = exc.position
        problem = Problem(file, line, column, exc.code, "", exc.message, None)
        return FlowReport(file, None, [problem])
    result = checker.check(document.data)
    located = []
    for item in result.diagnostics:
        line, column = document.source_map.locate(item.path, at_key=item.at_key)
        located.append((line, column, item))
    located.sort(key=lambda found: (found[0], found[1], found[2].code))
    problems = [
        Problem(
            file,
            line,
            column,
            item.code,
            item.path,
            clipped(item.message, MAX_MESSAGE_CHARS),
            None if item.hint is None else clipped(item.hint, MAX_MESSAGE_CHARS),
            item.severity,
        )
        for line, column, item in located[:MAX_PROBLEMS]
    ]
    return FlowReport(file, result.flow, problems, omitted=len(located) - len(problems))


def read_flow_file(path: Path) -> bytes:
    """The bytes of a regular file, at most one past the size limit (the reader refuses
    more). Raises `UnreadableFlowFileError` for anything else: missing, a directory, a
    device or a pipe (which could block or never end), no permission."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UnreadableFlowFileError(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise UnreadableFlowFileError(f"{path}: {kind}")
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UnreadableFlowFileError(f"{path}: {exc.strerror or exc}") from None


def check_file(path: Path, checker: FlowChecker) -> FlowReport:
    return check_source(read_flow_file(path), str(path), checker)
