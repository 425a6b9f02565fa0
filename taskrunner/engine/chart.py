"""The chart of a flow document, or of a sub-chart: its graph of transitions, its own
problems (a missing start or target, an unreachable state, a state from which no end can
be reached, a loop that never records a step), and what holds on every path from the
start once they are checked: which states are reached, whose outputs exist, where an
error has surely been caught, and which references are known not to be null.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Final

from taskrunner.engine.diagnostics import Diagnostic, closest, listing, pointer
from taskrunner.engine.flow import Language
from taskrunner.engine.graph import Edge, Graph
from taskrunner.engine.states.base import State, Transition, transitions_in

MAX_SUGGESTIONS: Final = 100
"""How many `did you mean` searches one document gets: each compares a word with every
name (a thousand states), so a document with thousands of unknown names would make the
work quadratic. Past it, a hint lists the names instead."""


class Hints:
    """`did you mean` for one document, within its budget of searches."""

    def __init__(self) -> None:
        self.left = MAX_SUGGESTIONS

    def closest(self, word: str, names: list[str]) -> str | None:
        if self.left <= 0:
            return None
        self.left -= 1
        return closest(word, names)

    def suggest(self, word: str, names: list[str]) -> str | None:
        meant = self.closest(word, names)
        return f"did you mean `{meant}`?" if meant else None


class Chart:
    """The states of one chart, as transitions; after `check`, what holds on every path."""

    def __init__(
        self,
        states: Mapping[str, object],
        kinds: Mapping[str, type[State] | None],
        whole: Mapping[str, State],
        language: Language,
        start: object,
    ) -> None:
        self.states = states
        self.kinds = kinds
        self.whole = whole
        self.language = language
        self.start_text = start
        self.start = start if isinstance(start, str) and start in states else None
        self.graph = self._graph()
        self.reachable: set[str] = set()
        self.outputs: dict[str, frozenset[str]] = {}
        """For each state, the states whose outputs exist there on every path."""
        self.caught: set[str] = set()
        """The states that every path reaches through a `catch`: where `$error` exists."""
        self.non_null: dict[str, frozenset[str]] = {}
        """For each state, the references known not to be null there (choice guards)."""

    def _graph(self) -> Graph:
        """The transitions of every state: of a broken state, those that can be read."""
        graph = Graph({name: kind.kind if kind else None for name, kind in self.kinds.items()})
        every = tuple(dict.fromkeys(key for kind in self.language for key in kind.TRANSITIONS))
        for name, raw in self.states.items():
            kind = self.kinds[name]
            transitions: list[Transition] = []
            complete = False
            if name in self.whole:
                transitions, complete = list(self.whole[name].transitions()), True
            elif kind is not None and isinstance(raw, Mapping):
                transitions, complete = kind.read_transitions(raw)
            elif isinstance(raw, Mapping):  # of no known kind: any transition it may have
                transitions = list(transitions_in(raw, every, None))
            here = pointer("states", name)
            for item in transitions:
                path = here + pointer(*item.path)
                # Every kind that catches errors lists its handlers under `catch`.
                caught = item.path[:1] == ("catch",)
                graph.add(Edge(name, item.target, path, item.with_output, caught))
            if not complete:
                graph.incomplete.add(name)
        return graph

    def check(self, hints: Hints) -> Iterator[Diagnostic]:
        """The chart's own problems; then what holds on every path is known."""
        names = self.graph.names
        if isinstance(self.start_text, str) and self.start is None:
            yield Diagnostic(
                "flow.unknown-start",
                f"the start state `{self.start_text}` does not exist",
                "/start",
                hints.suggest(self.start_text, names) or f"states: {listing(names)}",
            )
        for edge in list(self.graph.edges):
            if edge.target not in self.states:
                meant = hints.closest(edge.target, names)
                yield Diagnostic(
                    "flow.unknown-state",
                    f"transition to `{edge.target}`, which is not a state",
                    edge.path,
                    f"did you mean `{meant}`?" if meant else f"states: {listing(names)}",
                )
                if meant:  # follow the evident intent, so the typo does not cascade
                    self.graph.add(replace(edge, target=meant))
        if self.start is None:
            return
        self.reachable = self.graph.reachable_from(self.start)
        # Where an incomplete state leads is unknown: any state may be its missing target.
        complete = not (self.graph.incomplete & self.reachable)
        for name in names:
            if complete and name not in self.reachable:
                yield Diagnostic(
                    "flow.unreachable",
                    f"state `{name}` cannot be reached from the start state `{self.start}`",
                    pointer("states", name),
                    "remove it, or add a transition to it",
                    at_key=True,
                )
        # An incomplete state, or one with a transition to nowhere, may well end the flow
        # once its own problem is fixed: do not cascade from that problem.
        broken = {edge.source for edge in self.graph.edges if edge.target not in self.states}
        broken |= self.graph.incomplete
        ends = [
            name
            for name, kind in self.kinds.items()
            if (kind is not None and kind.terminal) or name in broken
        ]
        finishing = self.graph.reaching(ends)
        for name in names:
            if name in self.reachable and name not in finishing:
                yield Diagnostic(
                    "flow.no-terminal",
                    f"no succeed or fail state can be reached from `{name}`",
                    pointer("states", name),
                    "every path must be able to end: add a transition out of the loop",
                    at_key=True,
                )
        transient = {n for n, kind in self.kinds.items() if kind is not None and kind.transient}
        for cycle in self.graph.cycles_among(transient):
            yield self._endless(cycle)
        self.outputs = self.graph.guaranteed_outputs(self.start, self.reachable)
        self.caught = self.graph.caught_on_every_path(self.start, self.reachable)
        made = {
            pointer("states", name) + pointer(*path): facts
            for name, state in self.whole.items()
            for path, facts in state.guards().items()
        }
        self.non_null = self.graph.guaranteed_facts(
            self.start, self.reachable, made, _replaces_output
        )

    def _endless(self, cycle: list[str]) -> Diagnostic:
        named = {kind.kind for name in cycle if (kind := self.kinds[name]) is not None}
        noun = f"{named.pop()} state" if len(named) == 1 else "state"
        looping = (
            f"{noun}s {', '.join(f'`{n}`' for n in cycle)} form a loop"
            if len(cycle) > 1
            else f"{noun} `{cycle[0]}` loops to itself"
        )
        return Diagnostic(
            "flow.choice-cycle",
            f"{looping} with no task in it",
            pointer("states", cycle[0]),
            "data cannot change without a task, so the loop would never end",
            at_key=True,
        )


def _replaces_output(state: str, fact: str) -> bool:
    return fact == f"$states.{state}" or fact.startswith(f"$states.{state}.")
