"""A flow as a diagram, before it is written in any format: boxes (one per state, and a
start marker), arrows between them, and clusters for the sub-charts of parallel and map
states. The writers (`mermaid`, `dot`) only spell it out.

Every id is made here, in the order the flow is written (`s_0`, `s_1`… for states, `c_0`…
for clusters): names never become ids, so no name can break the syntax, and the same flow
always gives the same diagram.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import ValidationError

from taskrunner.diagrams.labels import catch_text, condition_text, kind_text, retry_text
from taskrunner.diagrams.paths import TaskPath
from taskrunner.engine.flow import Flow, builtin_language
from taskrunner.engine.states import ChoiceState, MapState, ParallelState, State
from taskrunner.engine.states.base import Transition
from taskrunner.engine.states.charts import Chart
from taskrunner.engine.states.recovery import Catch, Retry

START_ID: Final = "s_start"

ArrowStyle = Literal["next", "catch", "retry", "fanout"]
Mark = Literal["plain", "taken", "failed"]


@dataclass(frozen=True, slots=True)
class Box:
    """A state (or the start marker, of kind `start`), in a cluster or at the top."""

    id: str
    kind: str
    lines: tuple[str, ...]
    cluster: str | None
    mark: Mark = "plain"


@dataclass(frozen=True, slots=True)
class Arrow:
    source: str
    target: str
    label: str
    style: ArrowStyle
    taken: bool = False


@dataclass(frozen=True, slots=True)
class Cluster:
    id: str
    title: str
    parent: str | None


@dataclass
class Diagram:
    """What both formats draw, in the order they draw it."""

    title: str
    boxes: list[Box] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)

    def boxes_in(self, cluster: str | None) -> list[Box]:
        return [box for box in self.boxes if box.cluster == cluster]

    def clusters_in(self, parent: str | None) -> list[Cluster]:
        return [cluster for cluster in self.clusters if cluster.parent == parent]


def diagram_of(flow: Flow, path: TaskPath | None = None) -> Diagram:
    """The diagram of `flow`; with `path`, the task's states and moves marked on it, each
    state it visited labelled with its steps and status in words."""
    builder = _Builder(Diagram(flow.name), path)
    ids = builder.chart(in_chart_order(flow.start, flow.states), None, top=True)
    builder.diagram.boxes.insert(0, Box(START_ID, "start", ("start",), None))
    if flow.start in ids:  # a checked flow's start is always one of its states
        start = Arrow(START_ID, ids[flow.start], "", "next", path is not None)
        builder.diagram.arrows.insert(0, start)
    return builder.diagram


class _Builder:
    def __init__(self, diagram: Diagram, path: TaskPath | None) -> None:
        self.diagram = diagram
        self.path = path

    def chart(
        self, states: Mapping[str, State | str], cluster: str | None, *, top: bool
    ) -> dict[str, str]:
        """Add a chart's states and arrows; return the ids of its states by name. A state
        given as a string is one that does not read as a built-in kind: its written type.
        Only the flow's own chart (`top`) carries the task's path: a sub-chart's runs are
        tasks of their own."""
        path = self.path if top else None
        ids = {name: f"s_{len(self.diagram.boxes) + offset}" for offset, name in enumerate(states)}
        nested: list[tuple[str, ParallelState | MapState]] = []
        for name, state in states.items():
            kind = state if isinstance(state, str) else state.kind
            lines = (name, kind_text(None, state) if isinstance(state, str) else kind_text(state))
            mark: Mark = "plain"
            visit = path.visits.get(name) if path is not None else None
            if path is not None and visit is not None:
                lines = (f"{name} · {visit.words()}", lines[1])
                mark = "failed" if path.failed_state == name else "taken"
            self.diagram.boxes.append(Box(ids[name], kind, lines, cluster, mark))
            if isinstance(state, ParallelState | MapState):
                nested.append((name, state))
        for name, state in states.items():
            if isinstance(state, str):
                continue
            retry = getattr(state, "retry", None)
            if isinstance(retry, Retry):
                taken = path is not None and name in path.retried
                self._arrow(ids[name], ids[name], retry_text(retry), "retry", taken)
            for transition in state.transitions():
                target = ids.get(transition.target)
                if target is None:
                    continue
                taken = path is not None and (name, transition.target) in path.moves
                label, style = _transition_label(state, transition)
                self._arrow(ids[name], target, label, style, taken)
        for name, state in nested:
            self._fanout(ids[name], name, state, cluster)
        return ids

    def _fanout(
        self, owner: str, name: str, state: ParallelState | MapState, parent: str | None
    ) -> None:
        """A parallel state's branches, or a map state's item chart, each a cluster."""
        charts = (
            [
                (f"branch {branch}", f"branch {branch}", chart)
                for branch, chart in state.branches.items()
            ]
            if isinstance(state, ParallelState)
            else [(f"each item of {name}", "each item", state.each)]
        )
        for title, label, chart in charts:
            cluster = Cluster(f"c_{len(self.diagram.clusters)}", title, parent)
            self.diagram.clusters.append(cluster)
            ids = self.chart(
                in_chart_order(chart.start, _chart_states(chart)), cluster.id, top=False
            )
            if chart.start in ids:
                self._arrow(owner, ids[chart.start], label, "fanout")

    def _arrow(
        self, source: str, target: str, label: str, style: ArrowStyle, taken: bool = False
    ) -> None:
        self.diagram.arrows.append(Arrow(source, target, label, style, taken))


def _transition_label(state: State, transition: Transition) -> tuple[str, ArrowStyle]:
    """A choice rule's condition, `default`, or the error kinds a catch takes."""
    match transition.path:
        case ("rules", int(position), "next") if isinstance(state, ChoiceState):
            return condition_text(state.rules[position].when), "next"
        case ("default",):
            return "default", "next"
        case ("catch", int(position), "next"):
            handlers = getattr(state, "catch", [])
            if isinstance(handlers[position], Catch):
                return catch_text(handlers[position].errors), "catch"
    return "", "next"


def in_chart_order[S: State | str](start: str, states: Mapping[str, S]) -> dict[str, S]:
    """The states from `start` on, breadth first along their transitions as written, then
    those no transition reaches, by name: the order of the chart itself, not of the
    mapping, which differs between a flow file and its stored version (sorted keys)."""
    ordered: dict[str, S] = {}
    waiting = deque([start])
    while waiting:
        name = waiting.popleft()
        if name in ordered or name not in states:
            continue
        ordered[name] = state = states[name]
        if not isinstance(state, str):
            waiting.extend(transition.target for transition in state.transitions())
    ordered.update((name, states[name]) for name in sorted(states) if name not in ordered)
    return ordered


def _chart_states(chart: Chart) -> dict[str, State | str]:
    """A sub-chart's states (kept as written in the model) read with the built-in kinds;
    for one that does not read so (a kind of another language), its written type."""
    language = builtin_language()
    found: dict[str, State | str] = {}
    for name, raw in chart.states.items():
        kind = language.kind(raw.get("type"))
        written = raw.get("type")
        found[name] = written if isinstance(written, str) else "state"
        if kind is not None:
            with contextlib.suppress(ValidationError):  # drawn by its written type
                found[name] = kind.model_validate(raw)
    return found
