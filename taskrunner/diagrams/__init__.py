"""Diagrams of flows, drawn from the model: Mermaid (`flowchart TD`) and Graphviz DOT.

Pure: a `Flow` in, text out, the same bytes for the same flow. With a `TaskPath` (found
by `path_of`, which replays a task's steps), the task's path is highlighted and each state
it visited says its step count and status in words.
"""

from __future__ import annotations

from typing import Final, Literal

from taskrunner.diagrams import dot, mermaid
from taskrunner.diagrams.chart import diagram_of
from taskrunner.diagrams.paths import StateVisit, TaskPath, path_of
from taskrunner.engine.flow import Flow

DiagramFormat = Literal["mermaid", "dot"]
DIAGRAM_FORMATS: Final[tuple[DiagramFormat, ...]] = ("mermaid", "dot")


def draw(flow: Flow, format: DiagramFormat = "mermaid", path: TaskPath | None = None) -> str:
    """The diagram of `flow` in `format`; with `path`, the task's path on it."""
    diagram = diagram_of(flow, path)
    return dot.write(diagram) if format == "dot" else mermaid.write(diagram)


__all__ = ["DIAGRAM_FORMATS", "DiagramFormat", "StateVisit", "TaskPath", "draw", "path_of"]
