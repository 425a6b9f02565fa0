"""Rows of the task tables, as views."""

from __future__ import annotations

from typing import Any

from taskrunner.views import ErrorView, StepView


def summary_fields(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "flow": row.flow_name,
        "flow_version": row.flow_digest,
        "status": row.status,
        "current_state": row.current_state,
        "error": error_view(row.error_kind, row.error_message),
        "cancel_requested": row.cancel_requested,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


def error_view(kind: str | None, message: str | None) -> ErrorView | None:
    return None if kind is None else ErrorView(kind=kind, message=message or "")


def step_view(step: Any) -> StepView:
    return StepView(
        seq=step.seq,
        state=step.state,
        tool=step.tool,
        attempt=step.attempt,
        status=step.status,
        input=step.input,
        output=step.output,
        error=error_view(step.error_kind, step.error_message),
        started_at=step.started_at,
        finished_at=step.finished_at,
    )
