"""The state graph of a flow document, and what can be proved on it: reachability,
termination, cycles, and which outputs exist on every path to a state.

The meaning pass builds it from each state's transitions (read tolerantly for a state
whose shape is broken, so that its neighbours are still checked).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Edge:
    """A transition: where it goes, where it is written, and whether the state's output
    exists when it is taken (it does after `next` of a task, not after a `catch`), and
    whether it is taken when an error is caught."""

    source: str
    target: str
    path: str
    with_output: bool
    caught: bool = False


@dataclass
class Graph:
    kinds: dict[str, str | None]
    """Each state's kind (its `type`), when the document names a known one."""
    edges: list[Edge] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.kinds)

    def successors(self, name: str) -> list[Edge]:
        return self._out.get(name, [])

    def __post_init__(self) -> None:
        self._out: dict[str, list[Edge]] = {}
        self.incomplete: set[str] = set()
        """States whose transitions cannot all be read: of unknown type, or missing the
        transition their type requires. Where they lead is unknown."""

    def add(self, edge: Edge) -> None:
        self.edges.append(edge)
        if edge.target in self.kinds:
            self._out.setdefault(edge.source, []).append(edge)

    def reachable_from(self, start: str) -> set[str]:
        return set(self.breadth_first(start))

    def breadth_first(self, start: str) -> list[str]:
        """The states reachable from `start`, nearest first."""
        seen = {start: None}
        queue = deque([start])
        while queue:
            for edge in self.successors(queue.popleft()):
                if edge.target not in seen:
                    seen[edge.target] = None
                    queue.append(edge.target)
        return list(seen)

    def reaching(self, goals: Iterable[str]) -> set[str]:
        """The states from which some state of `goals` can be reached."""
        incoming: dict[str, list[str]] = {}
        for edge in self.edges:
            if edge.target in self.kinds:
                incoming.setdefault(edge.target, []).append(edge.source)
        seen = set(goals)
        queue = deque(seen)
        while queue:
            for source in incoming.get(queue.popleft(), ()):
                if source not in seen:
                    seen.add(source)
                    queue.append(source)
        return seen

    def path_without_output(self, start: str, goal: str, producer: str) -> list[str] | None:
        """A path from `start` to `goal` on which `producer` never yields an output."""
        previous: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            if current == goal:
                path = [current]
                while (before := previous[path[-1]]) is not None:
                    path.append(before)
                return path[::-1]
            for edge in self.successors(current):
                if edge.source == producer and edge.with_output:
                    continue
                if edge.target not in previous:
                    previous[edge.target] = current
                    queue.append(edge.target)
        return None

    def guaranteed_outputs(self, start: str, reachable: set[str]) -> dict[str, frozenset[str]]:
        """For each reachable state, the task states whose output exists on every path to it.

        A forward must-analysis: the intersection over incoming edges of what held before
        the source, plus the source itself when the edge is taken after its success.
        """
        everything = frozenset(reachable)
        held: dict[str, frozenset[str]] = dict.fromkeys(reachable, everything)
        held[start] = frozenset()
        queue = deque([start])
        queued = {start}
        while queue:
            current = queue.popleft()
            queued.discard(current)
            for edge in self.successors(current):
                if edge.target == start or edge.target not in held:
                    continue
                carried = held[current] | {current} if edge.with_output else held[current]
                narrowed = held[edge.target] & carried
                if narrowed != held[edge.target]:
                    held[edge.target] = narrowed
                    if edge.target not in queued:
                        queued.add(edge.target)
                        queue.append(edge.target)
        return held

    def caught_on_every_path(self, start: str, reachable: set[str]) -> set[str]:
        """The reachable states that no path from `start` reaches without going through a
        caught error (the last one caught stays, so one on the way is enough)."""
        uncaught = {start}
        queue = deque([start])
        while queue:
            for edge in self.successors(queue.popleft()):
                if not edge.caught and edge.target not in uncaught:
                    uncaught.add(edge.target)
                    queue.append(edge.target)
        return reachable - uncaught

    def guaranteed_facts(
        self,
        start: str,
        reachable: set[str],
        made: Mapping[str, frozenset[str]],
        broken_by: Callable[[str, str], bool],
    ) -> dict[str, frozenset[str]]:
        """For each reachable state, the facts that hold on every path into it.

        `made` gives the facts an edge establishes (by the edge's path: a choice rule's
        target knows its condition held); `broken_by(state, fact)` says whether leaving
        `state` ends a fact (a state that runs again replaces its output). The same
        must-analysis as `guaranteed_outputs`.
        """
        everything = frozenset().union(*made.values()) if made else frozenset()
        held: dict[str, frozenset[str]] = dict.fromkeys(reachable, everything)
        held[start] = frozenset()
        # Every state is visited once at least: an edge that leaves its target's facts as
        # they were would not queue it, yet the state may still break facts further on.
        queue = deque([start, *sorted(reachable - {start})])
        queued = set(queue)
        while queue:
            current = queue.popleft()
            queued.discard(current)
            kept = frozenset(fact for fact in held[current] if not broken_by(current, fact))
            for edge in self.successors(current):
                if edge.target == start or edge.target not in held:
                    continue
                narrowed = held[edge.target] & (kept | made.get(edge.path, frozenset()))
                if narrowed != held[edge.target]:
                    held[edge.target] = narrowed
                    if edge.target not in queued:
                        queued.add(edge.target)
                        queue.append(edge.target)
        return held

    def cycles_among(self, members: set[str]) -> list[list[str]]:
        """The cycles (strongly connected components) of the subgraph on `members`."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []
        counter = 0
        for root in sorted(members):
            if root in index:
                continue
            work: list[tuple[str, int]] = [(root, 0)]
            while work:
                node, position = work.pop()
                if position == 0:
                    index[node] = low[node] = counter
                    counter += 1
                    stack.append(node)
                    on_stack.add(node)
                targets = [e.target for e in self.successors(node) if e.target in members]
                if position < len(targets):
                    work.append((node, position + 1))
                    target = targets[position]
                    if target not in index:
                        work.append((target, 0))
                    elif target in on_stack:
                        low[node] = min(low[node], index[target])
                    continue
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    looping = len(component) > 1 or node in targets
                    if looping:
                        found.append(sorted(component))
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
        return found
