"""The flows a taskrunner process can start: every `*.yaml` file of the flows directory,
checked through the same validator as `validate-flow`.

One bad file does not take the others down: a file that is invalid, cannot be read, or
names a flow that an earlier file (in file-name order) already defines is skipped, and
kept in the catalog with its problems so that it can be reported (a warning on the
command line, a log line in a server, `GET /flows`). Only a flows directory that cannot
be listed at all is an error.

A catalog never changes once loaded: a reload builds a new one, and the process swaps it
in whole (`TaskService.use_catalog`), so whoever holds a catalog holds one consistent
set of flows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from taskrunner.engine.flow import Flow
from taskrunner.engine.model import FLOW_NAME_PATTERN
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import (
    FlowCatalogError,
    InvalidFlowFileError,
    UnknownFlowError,
    UnreadableFlowFileError,
)
from taskrunner.flowfile import Problem, check_source, read_flow_file
from taskrunner.flowfile.reader import ReadError, read_document
from taskrunner.tools import load_registry

Fingerprint = tuple[tuple[str, int, int, int, int], ...]
"""What the flows directory looked like: each `*.yaml` file's name, inode, size, mtime and
ctime (nanoseconds). Any edit, replacement, addition or removal changes it."""


@dataclass(frozen=True)
class CatalogEntry:
    flow: Flow
    plan: FlowPlan
    path: Path
    warnings: tuple[Problem, ...] = ()
    """What the validator warned of: the flow loads, and loading logs them."""

    def warning_lines(self) -> list[str]:
        """One line per warning, for a log or the command line's stderr."""
        return [f"{self.path} loaded with a warning: {item}" for item in self.warnings]


@dataclass(frozen=True)
class SkippedFile:
    """A flow file that was not loaded, and why."""

    path: Path
    reason: str
    """What is wrong with it, as one clause to follow the file's name: `has 3 problems`,
    `cannot be read: …`, `defines the flow 'x', which a.yaml defines first`."""
    problems: tuple[Problem, ...] = ()
    """The validator's problems, as `validate-flow --json` gives them (none when the file
    could not be read, or merely repeats a name)."""
    name: str | None = None
    """The flow name the file declares, when it could be read that far."""

    def warning(self) -> str:
        """The one line that says it, for a log or the command line's stderr."""
        line = f"{self.path} {self.reason}; skipped"
        if self.problems:
            line += f" (see them with `taskrunner validate-flow {self.path}`)"
        return line

    def names(self) -> set[str]:
        """The names under which a request may be looking for this file's flow."""
        return {self.path.stem, *([self.name] if self.name else [])}


class FlowCatalog:
    """The loaded flows, by name, each with its compiled plan; and the files skipped."""

    def __init__(
        self,
        entries: dict[str, CatalogEntry],
        checker: FlowChecker,
        *,
        skipped: tuple[SkippedFile, ...] = (),
        fingerprint: Fingerprint | None = None,
    ) -> None:
        self._entries = entries
        self.checker = checker
        self.skipped = skipped
        self.fingerprint = fingerprint

    @classmethod
    def load(cls, directory: Path, checker: FlowChecker) -> FlowCatalog:
        """Every flow file of `directory`; raises `FlowCatalogError` only when the
        directory itself cannot be listed."""
        fingerprint = directory_fingerprint(directory)
        entries: dict[str, CatalogEntry] = {}
        skipped: list[SkippedFile] = []
        for name, *_ in fingerprint:
            path = directory / name
            loaded = _load_file(path, checker)
            if isinstance(loaded, SkippedFile):
                skipped.append(loaded)
                continue
            flow, warnings = loaded
            first = entries.get(flow.name)
            if first is not None:
                reason = f"defines the flow {flow.name!r}, which {first.path.name} defines first"
                skipped.append(SkippedFile(path, reason, name=flow.name))
                continue
            plan = FlowPlan(flow, checker.registry)
            entries[flow.name] = CatalogEntry(flow, plan, path, warnings)
        return cls(entries, checker, skipped=tuple(skipped), fingerprint=fingerprint)

    @classmethod
    def of(cls, flows: list[Flow], checker: FlowChecker) -> FlowCatalog:
        """A catalog of flows already in hand (for tests and embedding)."""
        entries = {
            flow.name: CatalogEntry(flow, FlowPlan(flow, checker.registry), Path(f"{flow.name}"))
            for flow in flows
        }
        return cls(entries, checker)

    def get(self, name: str) -> CatalogEntry:
        """The flow `name`; raises `InvalidFlowFileError` when the file that would define
        it was skipped, and `UnknownFlowError` when there is no such flow at all."""
        entry = self._entries.get(name)
        if entry is not None:
            return entry
        for skipped in self.skipped:
            if name in skipped.names():
                raise InvalidFlowFileError(name, skipped.path.name, skipped.reason)
        raise UnknownFlowError(name, self.names())

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter([self._entries[name] for name in self.names()])


def directory_fingerprint(directory: Path) -> Fingerprint:
    """The `*.yaml` files of `directory`, in file-name order, with what identifies their
    content cheaply (no file is read). Raises `FlowCatalogError` when the directory cannot
    be listed."""
    try:
        with os.scandir(directory) as listing:
            names = sorted(item.name for item in listing if item.name.endswith(".yaml"))
    except FileNotFoundError:
        raise FlowCatalogError(
            f"the flows directory {directory} does not exist "
            "(set TASKRUNNER_FLOWS_DIR to a directory of flow files)"
        ) from None
    except OSError as exc:
        raise FlowCatalogError(
            f"the flows directory {directory} cannot be listed: {exc.strerror or exc}"
        ) from None
    stamps = []
    for name in names:
        try:
            info = os.stat(directory / name)
        except OSError:  # gone, or a dangling link: loading says why
            stamps.append((name, 0, -1, 0, 0))
            continue
        stamps.append((name, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
    return tuple(stamps)


def _load_file(path: Path, checker: FlowChecker) -> tuple[Flow, tuple[Problem, ...]] | SkippedFile:
    try:
        raw = read_flow_file(path)
    except UnreadableFlowFileError as exc:
        reason = exc.message.removeprefix(f"{path}: ")
        return SkippedFile(path, f"cannot be read: {reason}")
    # Problems name the file as it is in the directory: where the directory is on the
    # server is no business of an API client.
    report = check_source(raw, path.name, checker)
    if report.flow is not None:
        return report.flow, tuple(report.warnings)
    count = len(report.errors)
    reason = f"has {count} problem{'s' if count != 1 else ''}"
    return SkippedFile(path, reason, tuple(report.problems), _declared_name(raw))


def _declared_name(raw: bytes) -> str | None:
    """The flow name an invalid file declares, if it reads as far as that."""
    try:
        data = read_document(raw).data
    except ReadError:
        return None
    name = data.get("name")
    if isinstance(name, str) and re.fullmatch(FLOW_NAME_PATTERN, name):
        return name
    return None


def load_catalog(directory: Path) -> FlowCatalog:
    """The flows of `directory`, checked against every registered tool."""
    return FlowCatalog.load(directory, FlowChecker(load_registry()))
