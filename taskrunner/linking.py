"""Checking flow files together, since a flow may call others (`flow` states).

A flow is checked knowing the signatures of the flows it calls, so those are checked
first: the files are ordered by the call graph, callees before callers. Flows that call
each other in a cycle are each reported (`flow.cycle`) and do not load; a flow that calls
one that does not load is reported too. Each flow that loads is pinned to the versions of
the flows it calls (`Language.pin`), so its digest covers them.

The catalog links the files of the flows directory; `validate-flow` links the files it is
given, on top of the flows directory's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from taskrunner.engine.flow import Flow
from taskrunner.engine.subflows import FlowSignature, called_flows, cyclic_groups, is_cyclic
from taskrunner.engine.types import ANY
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import FlowReport, check_source
from taskrunner.flowfile.reader import ReadError, read_document


@dataclass(frozen=True)
class Source:
    """A flow file's bytes, and how its problems name it."""

    file: str
    raw: bytes


@dataclass(frozen=True)
class Linked:
    """One source, checked: its report, and its flow pinned if it is valid."""

    source: Source
    report: FlowReport
    flow: Flow | None
    name: str | None
    """The name it declares, when it can be read that far."""


@dataclass(frozen=True)
class Linkage:
    """The sources checked together, in their order, and the checker that knows every
    flow that loaded (besides those it knew before)."""

    linked: list[Linked]
    checker: FlowChecker


def link(
    sources: Sequence[Source],
    checker: FlowChecker,
    outside: Mapping[str, Flow] | None = None,
) -> Linkage:
    """Check `sources` together with the flows `checker` already knows, of which
    `outside` are the pinned versions (to pin callers to). Of several valid sources that
    declare one name, the first is the flow the others see."""
    declared: dict[int, str] = {}
    calls: dict[str, set[str]] = {}
    for position, source in enumerate(sources):
        name, called = _declared(source.raw)
        if name is not None:
            declared[position] = name
            calls.setdefault(name, set()).update(called)
    signatures: dict[str, FlowSignature | None] = dict(checker.flows)
    signatures.update(dict.fromkeys(calls))
    pinned: dict[str, Flow] = dict(outside or {})
    for name in calls:
        pinned.pop(name, None)
    results: dict[int, Linked] = {}
    for position, source in enumerate(sources):
        if position not in declared:  # it cannot be read as far as its name: no one calls it
            report = check_source(source.raw, source.file, checker.with_flows(signatures))
            results[position] = Linked(source, report, None, None)
    by_name: dict[str, list[int]] = {}
    for position, name in declared.items():
        by_name.setdefault(name, []).append(position)
    for group in cyclic_groups(calls):
        view = dict(signatures)
        if is_cyclic(group, calls):
            # What each member would be to the others; the cycle is what is reported.
            view.update(
                {name: FlowSignature(name, ANY, ANY, frozenset(calls[name])) for name in group}
            )
        seeing = checker.with_flows(view)
        for name in group:
            for position in by_name[name]:
                source = sources[position]
                report = check_source(source.raw, source.file, seeing)
                flow = None
                if report.flow is not None and not is_cyclic(group, calls):
                    flow = checker.language.pin(report.flow, pinned)
                    if name not in pinned:
                        pinned[name] = flow
                        signatures[name] = seeing.signature(flow)
                results[position] = Linked(source, report, flow, name)
    ordered = [results[position] for position in range(len(sources))]
    return Linkage(ordered, checker.with_flows(signatures))


def _declared(raw: bytes) -> tuple[str | None, set[str]]:
    """The name a flow file declares, and the flows it calls, if it reads as a mapping."""
    try:
        data = read_document(raw).data
    except ReadError:
        return None, set()
    name = data.get("name") if isinstance(data, Mapping) else None
    return (name, called_flows(data)) if isinstance(name, str) else (None, set())
