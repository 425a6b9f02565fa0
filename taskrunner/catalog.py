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
from taskrunner.engine.subflows import FlowSignature, called_flows, cyclic_groups, is_cyclic
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import (
    FlowCatalogError,
    InvalidFlowFileError,
    UnknownFlowError,
    UnreadableFlowFileError,
)
from taskrunner.flowfile import Problem, read_flow_file
from taskrunner.flowfile.reader import ReadError, read_document
from taskrunner.linking import Linked, Source, link
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
    """The loaded flows, by name, each with its compiled plan (of its pinned version: see
    `linking`); and the files skipped. Its `checker` knows the loaded flows' signatures,
    so that a flow checked against it may call them."""

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
        """Every flow file of `directory`, checked together (a flow may call another);
        raises `FlowCatalogError` only when the directory itself cannot be listed. The
        catalog's checker knows the flows that loaded, for flows checked later."""
        fingerprint = directory_fingerprint(directory)
        sources: list[Source] = []
        paths: dict[str, Path] = {}
        skipped: list[SkippedFile] = []
        for name, *_ in fingerprint:
            path = directory / name
            try:
                raw = read_flow_file(path)
            except UnreadableFlowFileError as exc:
                reason = exc.message.removeprefix(f"{path}: ")
                skipped.append(SkippedFile(path, f"cannot be read: {reason}"))
                continue
            # Problems name the file as it is in the directory: where the directory is on
            # the server is no business of an API client.
            sources.append(Source(path.name, raw))
            paths[path.name] = path
        linkage = link(sources, checker.with_flows({}))
        entries: dict[str, CatalogEntry] = {}
        for linked in linkage.linked:
            path = paths[linked.source.file]
            flow = linked.flow
            if flow is None:
                skipped.append(_invalid(path, linked))
                continue
            first = entries.get(flow.name)
            if first is not None:
                reason = f"defines the flow {flow.name!r}, which {first.path.name} defines first"
                skipped.append(SkippedFile(path, reason, name=flow.name))
                continue
            plan = FlowPlan(flow, checker.registry)
            entries[flow.name] = CatalogEntry(flow, plan, path, tuple(linked.report.warnings))
        order = {path: position for position, (path, *_) in enumerate(fingerprint)}
        skipped.sort(key=lambda item: order[item.path.name])
        return cls(entries, linkage.checker, skipped=tuple(skipped), fingerprint=fingerprint)

    @classmethod
    def of(cls, flows: list[Flow], checker: FlowChecker) -> FlowCatalog:
        """A catalog of valid flows already in hand (for tests and embedding), each pinned
        to the others it calls. Raises `ValueError` when one calls a flow not among them,
        or flows call each other in a cycle."""
        by_name = {flow.name: flow for flow in flows}
        calls = {
            flow.name: called_flows(flow.model_dump(mode="json", by_alias=True)) for flow in flows
        }
        pinned: dict[str, Flow] = {}
        signatures: dict[str, FlowSignature | None] = {}
        for group in cyclic_groups(calls):
            if is_cyclic(group, calls):
                raise ValueError(f"the flows {', '.join(group)} call each other in a cycle")
            [name] = group
            unknown = calls[name] - pinned.keys()
            if unknown:
                raise ValueError(f"the flow {name!r} calls {', '.join(sorted(unknown))}, not given")
            pinned[name] = checker.language.pin(by_name[name], pinned)
            signatures[name] = checker.with_flows(signatures).signature(pinned[name])
        entries = {
            flow.name: CatalogEntry(flow, FlowPlan(flow, checker.registry), Path(f"{flow.name}"))
            for flow in (pinned[name] for name in by_name)
        }
        return cls(entries, checker.with_flows(signatures))

    def pinned(self) -> dict[str, Flow]:
        """The loaded flows' pinned versions, by name."""
        return {name: entry.flow for name, entry in self._entries.items()}

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


def _invalid(path: Path, linked: Linked) -> SkippedFile:
    report = linked.report
    count = len(report.errors)
    reason = f"has {count} problem{'s' if count != 1 else ''}"
    return SkippedFile(path, reason, tuple(report.problems), _declared_name(linked.source.raw))


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
