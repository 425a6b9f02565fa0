"""Diagrams of the flows a service knows and of the paths its tasks took: what
`GET /flows/{name}/graph`, `GET /tasks/{id}/graph` and `taskrunner graph` print.

A task is drawn on the flow version it is pinned to (its digest), not on the flow's file
as it is now, which may have changed since; its path is found by replaying its steps.
"""

from __future__ import annotations

import uuid

from taskrunner.diagrams import DiagramFormat, draw, path_of
from taskrunner.errors import TaskNotFoundError
from taskrunner.service import TaskService
from taskrunner.versions import FlowVersions


def flow_graph(service: TaskService, name: str, format: DiagramFormat) -> str:
    """The diagram of the flow `name` as the catalog has it. Raises `UnknownFlowError`, or
    `InvalidFlowFileError` when its file was skipped."""
    return draw(service.catalog.get(name).flow, format)


def task_graph(service: TaskService, task_id: uuid.UUID, format: DiagramFormat) -> str:
    """The diagram of the task's flow version with the path it took so far. Raises
    `TaskNotFoundError`."""
    task = service.repository.get_task(task_id)
    if task is None:
        raise TaskNotFoundError(task_id)
    versions = FlowVersions(service.repository, service.catalog)
    plan = versions.plan(task.flow_digest, service.catalog.checker)
    recorded = service.repository.steps_of(task_id) if task.step_count else []
    steps = [step.step() for step in recorded]
    path = path_of(plan, task.input, steps, task.status, task.current_state)
    return draw(plan.flow, format, path)
