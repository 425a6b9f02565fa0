"""The flows a taskrunner process can start: every `*.yaml` file of the flows directory,
checked at start-up through the same validator as `validate-flow`. A process does not
start with an invalid flow: the problems are reported, located, and it stops."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from taskrunner.engine.flow import Flow
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import FlowCatalogError, UnknownFlowError
from taskrunner.flowfile import Problem, check_file
from taskrunner.tools import load_registry


@dataclass(frozen=True)
class CatalogEntry:
    flow: Flow
    plan: FlowPlan
    path: Path


class FlowCatalog:
    """The loaded flows, by name, each with its compiled plan."""

    def __init__(self, entries: dict[str, CatalogEntry], checker: FlowChecker) -> None:
        self._entries = entries
        self.checker = checker

    @classmethod
    def load(cls, directory: Path, checker: FlowChecker) -> FlowCatalog:
        if not directory.is_dir():
            raise FlowCatalogError(
                f"the flows directory {directory} does not exist "
                "(set TASKRUNNER_FLOWS_DIR to a directory of flow files)"
            )
        entries: dict[str, CatalogEntry] = {}
        problems: list[Problem] = []
        for path in sorted(directory.glob("*.yaml")):
            report = check_file(path, checker)
            problems.extend(report.problems)
            if report.flow is None:
                continue
            name = report.flow.name
            if name in entries:
                raise FlowCatalogError(
                    f"{path} and {entries[name].path} both define the flow {name!r}"
                )
            entries[name] = CatalogEntry(report.flow, FlowPlan(report.flow, checker.registry), path)
        if problems:
            raise FlowCatalogError(
                f"invalid flows in {directory}:", [str(problem) for problem in problems]
            )
        return cls(entries, checker)

    @classmethod
    def of(cls, flows: list[Flow], checker: FlowChecker) -> FlowCatalog:
        """A catalog of flows already in hand (for tests and embedding)."""
        entries = {
            flow.name: CatalogEntry(flow, FlowPlan(flow, checker.registry), Path(f"{flow.name}"))
            for flow in flows
        }
        return cls(entries, checker)

    def get(self, name: str) -> CatalogEntry:
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownFlowError(name, self.names())
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter([self._entries[name] for name in self.names()])


def load_catalog(directory: Path) -> FlowCatalog:
    """The flows of `directory`, checked against every registered tool."""
    return FlowCatalog.load(directory, FlowChecker(load_registry()))
