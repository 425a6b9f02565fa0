"""What a request must be to become a task, and the record of the task it becomes.

A request is refused before anything is stored: an unknown flow, a bad idempotency key,
an input the flow refuses, or one a database cannot store.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.flow import Flow
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.storable import fault_message, unstorable
from taskrunner.errors import FlowInputError, UnstorableDataError
from taskrunner.idempotency import check_idempotency_key
from taskrunner.jsontext import shown_pointer
from taskrunner.leases import LeaseKeeper
from taskrunner.store.records import TaskRecord, TaskStatus
from taskrunner.tools import JsonObject


def admit(
    catalog: FlowCatalog,
    flow_name: str,
    data: Mapping[str, object],
    idempotency_key: str | None,
) -> tuple[Flow, FlowPlan, JsonObject]:
    """The flow, its plan and the input, validated, of a request to start a task."""
    entry = catalog.get(flow_name)
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
    # Unstorable text is named as such before validation can misreport it; defaults
    # come from the flow, and are checked once applied.
    _refuse_unstorable(data)
    clean = entry.plan.validate_input(data)
    _refuse_unstorable(clean)
    return entry.flow, entry.plan, clean


def new_task(
    flow: Flow,
    data: JsonObject,
    status: TaskStatus,
    *,
    task_id: uuid.UUID,
    idempotency_key: str | None,
    now: datetime,
    leases: LeaseKeeper,
) -> TaskRecord:
    """A task just started: `running`, held by `leases`' owner, or `pending`, queued."""
    held = status == "running"
    return TaskRecord(
        id=task_id,
        flow_name=flow.name,
        flow_digest=flow.digest,
        status=status,
        current_state=flow.start,
        error_kind=None,
        error_message=None,
        cancel_requested=False,
        created_at=now,
        updated_at=now,
        started_at=now if held else None,
        finished_at=None,
        input=data,
        output=None,
        idempotency_key=idempotency_key,
        run_after=None if held else now,
        lease_owner=leases.owner if held else None,
        lease_expires_at=leases.expiry() if held else None,
        step_count=0,
        checkpoint=None,
    )


def _refuse_unstorable(data: object) -> None:
    fault = unstorable(data)
    if fault is None:
        return
    if fault.too_deep:
        # The API and the CLI refuse such JSON as they read it; a library caller may not.
        raise FlowInputError([fault_message(fault, "the input")])
    raise UnstorableDataError(shown_pointer(fault.pointer))
