"""The diagrams the console draws: Mermaid text, which the page renders in the browser with
the app's own copy of Mermaid.

A task's diagram is a help to its page, not the page: when it cannot be drawn (the
task's flow version cannot be planned here any more), the page shows the task without it.
"""

from __future__ import annotations

import logging
import uuid

from pydantic import ValidationError

from taskrunner.diagrams import draw
from taskrunner.engine.flow import Flow
from taskrunner.errors import StoreUnavailableError, TaskNotFoundError, TaskrunnerError
from taskrunner.graphs import flow_graph, task_graph
from taskrunner.service import TaskService

log = logging.getLogger("taskrunner.ui")


def task_diagram(service: TaskService, task_id: uuid.UUID) -> str | None:
    """The task's flow version, with the path it took; None when it cannot be drawn."""
    try:
        return task_graph(service, task_id, "mermaid")
    except (StoreUnavailableError, TaskNotFoundError):
        raise
    except (TaskrunnerError, ValidationError) as exc:
        log.warning("the diagram of task %s cannot be drawn: %s", task_id, exc)
        return None


def flow_diagram(service: TaskService, name: str) -> str:
    """The flow's state chart, as the catalog has it."""
    return flow_graph(service, name, "mermaid")


def document_diagram(flow: Flow) -> str:
    """The state chart of a flow document that was just checked."""
    return draw(flow, "mermaid")
