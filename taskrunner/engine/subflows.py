"""Flows that call flows: what a flow looks like from outside, which flows it calls, the
cycles among them, and the versions a caller is pinned to.

A `flow` state starts another flow by name. The checker sees that flow through its
`FlowSignature` (the type of its input and of its output, and the flows it calls itself),
given by whoever knows the other flows: the catalog, or `validate-flow` over several
files. A flow that calls itself, directly or through others, could never end: it is an
error (`flow.cycle`), and such a flow does not load.

Pinning works like a lock file. A caller's version records the digest of every flow it
calls, directly or not (`Flow.pins`), so its own digest changes when any of them does;
and it carries their definitions (`Flow.locked`, outside the digest, each checked against
its pin when used), so a task runs exactly the sub-flow versions it started with, even
once the files changed or the process restarted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol, Self, runtime_checkable

from taskrunner.engine.types import ValueType
from taskrunner.tools import JsonObject

FLOW_STATE_TYPE: Final = "flow"
VALUE_KEYS: Final = frozenset({"args", "input", "output", "value", "initial", "default"})
"""Keys whose content is data, never a chart: a `{type: flow}` inside is not a call."""


@dataclass(frozen=True)
class FlowSignature:
    """What a caller may know of a flow: its input and output types, and whom it calls."""

    name: str
    input: ValueType
    """The type of its `$input`: an object of its declared fields, the required ones
    required, no other field allowed."""
    output: ValueType
    """The type of a task's output: the union of its succeed states' outputs."""
    calls: frozenset[str] = frozenset()
    """The flows its own `flow` states call."""
    raises: frozenset[str] | None = None
    """The error kinds a task of it may fail with, as a caller's `retry` and `catch` see
    them; None when they cannot be known (an unknown tool, an error kind built from data)."""


@dataclass(frozen=True)
class KnownFlows:
    """The other flows a document may call, as seen from the document `current`.

    A name mapped to None is a flow that exists but does not load (its file has problems,
    or it is in a cycle): calling it is reported, but not as a name that does not exist.
    """

    current: str | None = None
    signatures: Mapping[str, FlowSignature | None] = field(default_factory=dict)

    def get(self, name: str) -> FlowSignature | None:
        return self.signatures.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.signatures

    def names(self) -> list[str]:
        return sorted(self.signatures)

    def cycle_through(self, callee: str) -> list[str] | None:
        """The cycle that a call from `current` to `callee` closes, as the names from
        `current` back to itself (`[a, b, a]`); None when it closes none."""
        if self.current is None:
            return None
        if callee == self.current:
            return [self.current, self.current]
        # Breadth first, so that the cycle named is a shortest one.
        came_from: dict[str, str] = {callee: self.current}
        frontier = [callee]
        while frontier:
            reached: list[str] = []
            for name in frontier:
                signature = self.signatures.get(name)
                for called in sorted(signature.calls) if signature else ():
                    if called == self.current:
                        route = [name]
                        while route[-1] != callee:
                            route.append(came_from[route[-1]])
                        return [self.current, *reversed(route), self.current]
                    if called not in came_from:
                        came_from[called] = name
                        reached.append(called)
            frontier = reached
        return None


def called_flows(document: object) -> set[str]:
    """The names of the flows that a flow document's `flow` states call, wherever they
    are in it (in a branch's or an item's chart too)."""
    found: set[str] = set()
    states = document.get("states") if isinstance(document, Mapping) else None
    pending: list[object] = [states]
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            name = item.get("flow")
            if item.get("type") == FLOW_STATE_TYPE and isinstance(name, str):
                found.add(name)
            pending.extend(value for key, value in item.items() if key not in VALUE_KEYS)
        elif isinstance(item, list):
            pending.extend(item)
    return found


def cyclic_groups(calls: Mapping[str, set[str]]) -> Iterator[list[str]]:
    """The strongly connected groups of the call graph `calls` (name → names it calls,
    outside names ignored), callees before callers: a flow comes after every flow it
    calls, unless they call each other. Tarjan's algorithm, without recursion, so that a
    long chain of flows cannot exhaust the stack."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    work: list[tuple[str, Iterator[str]]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        work.append((name, iter(sorted(calls.get(name, set()) & calls.keys()))))

    for root in sorted(calls):
        if root in index:
            continue
        visit(root)
        while work:
            name, pending = work[-1]
            advanced = False
            for called in pending:
                if called not in index:
                    visit(called)
                    advanced = True
                    break
                if called in on_stack:
                    low[name] = min(low[name], index[called])
            if advanced:
                continue
            work.pop()
            if work:
                caller = work[-1][0]
                low[caller] = min(low[caller], low[name])
            if low[name] == index[name]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == name:
                        break
                yield sorted(group)


def is_cyclic(group: list[str], calls: Mapping[str, set[str]]) -> bool:
    """Whether a group of `cyclic_groups` is a cycle (a lone flow only if it calls itself)."""
    return len(group) > 1 or group[0] in calls.get(group[0], set())


@runtime_checkable
class CallsFlows(Protocol):
    """A state plan that runs pinned flow versions: the flow plan hands it the pins and
    locked versions of the flow version it is part of (a kind's `compile` cannot know
    them). A kind whose plan runs a chart with `flow` states in it (a branch) passes them
    on into the chart's document, as `pins` and `locked`."""

    def with_pins(self, pins: Mapping[str, str], locked: Mapping[str, JsonObject]) -> Self: ...


def pins_for(
    document: JsonObject, pins: Mapping[str, str], locked: Mapping[str, JsonObject]
) -> JsonObject:
    """The `pins` and `locked` parts of a chart's flow document (a branch, a map item),
    taken from its parent's version: those of the flows the chart calls, directly or
    not, so that its digest covers them and its child runs them. A flow the parent does
    not pin is left out: its `flow` state fails with `UnpinnedFlow`, as the parent's
    would. Empty when the chart calls no flow, so its digest is the unpinned one."""
    own: dict[str, str] = {}
    pending = sorted(called_flows(document))
    while pending:
        name = pending.pop()
        digest = pins.get(name)
        if name in own or digest is None:
            continue
        own[name] = digest
        callee = locked.get(digest)
        further = callee.get("pins") if callee is not None else None
        pending.extend(further if isinstance(further, Mapping) else ())
    if not own:
        return {}
    carried: JsonObject = {
        digest: locked[digest] for digest in sorted(set(own.values())) if digest in locked
    }
    return {"pins": dict(sorted(own.items())), "locked": carried}


def version_digest(definition: JsonObject) -> str:
    """The digest of a stored definition, computed as `Flow.digest` is (its `locked`
    part, outside the version, left out)."""
    versioned = {key: value for key, value in definition.items() if key != "locked"}
    text = json.dumps(versioned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class UnpinnedFlowError(LookupError):
    """A flow state calls a flow that its flow version does not pin (or pins wrongly):
    the version was made without the catalog, or its stored definition was altered."""


def pinned_version(
    pins: Mapping[str, str], locked: Mapping[str, JsonObject], name: str
) -> PinnedVersion:
    """The definition and digest of the version of `name` that a caller pins, carrying
    the locked versions it needs itself. Raises `UnpinnedFlowError`."""
    digest = pins.get(name)
    definition = locked.get(digest) if digest is not None else None
    if digest is None or definition is None:
        raise UnpinnedFlowError(f"this flow version pins no version of the flow {name!r}")
    if version_digest(definition) != digest:
        raise UnpinnedFlowError(f"the locked version of the flow {name!r} is not {digest}")
    own = definition.get("pins")
    needed = own.values() if isinstance(own, Mapping) else ()
    carried: JsonObject = {
        key: locked[key] for key in needed if isinstance(key, str) and key in locked
    }
    if len(carried) != len(needed):
        raise UnpinnedFlowError(f"the flows that {name!r} calls are not all locked")
    return PinnedVersion(digest, {**definition, "locked": carried} if carried else dict(definition))


@dataclass(frozen=True)
class PinnedVersion:
    """The version of a sub-flow that a caller pins, as a `fanout.Child` runs it."""

    digest: str
    definition: JsonObject
