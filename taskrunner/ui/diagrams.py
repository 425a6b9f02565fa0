"""The diagrams the console draws: Mermaid text, rendered in the browser by the vendored
Mermaid."""

from __future__ import annotations

import uuid

from taskrunner.engine.flow import Flow
from taskrunner.service import TaskService


def task_diagram(service: TaskService, task_id: uuid.UUID) -> str | None:
    """The task's flow, with the path it took."""
    return None


def flow_diagram(service: TaskService, name: str) -> str | None:
    """The flow's state chart."""
    return None


def document_diagram(flow: Flow) -> str | None:
    """The state chart of a flow document that was just checked."""
    return None
