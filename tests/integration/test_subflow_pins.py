"""A task is pinned to its sub-flows' versions in the store itself: on both backends, a
process that never saw the old files reads back, with the caller's version, exactly the
sub-flow versions the task started with."""

from __future__ import annotations

import shutil
from pathlib import Path

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.interpreter import Execution
from taskrunner.engine.steps import CallTool
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowwatch import FlowReloader
from taskrunner.service import TaskService
from taskrunner.store.database import Database
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.versions import FlowVersions

SIBLINGS = Path(__file__).resolve().parents[1] / "flows" / "siblings"


def test_the_stored_version_carries_the_pinned_sub_flows(
    database: Database, checker: FlowChecker, tmp_path: Path
) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(SIBLINGS, flows)
    service = TaskService(SqlTaskRepository(database), FlowCatalog.load(flows, checker))
    try:
        old_pong = service.catalog.get("pong").flow.digest
        started = service.enqueue_task("relay", {"n": 7})
        pong = flows / "pong.yaml"
        pong.write_text(pong.read_text().replace("Its input, back.", "The input, again."))
        FlowReloader(flows, service, warn=lambda line: None).reload()
        assert service.catalog.get("pong").flow.digest != old_pong
    finally:
        service.close()
    elsewhere = SqlTaskRepository(database)
    try:
        task = elsewhere.get_task(started.task.id)
        assert task is not None
        catalog = FlowCatalog.load(flows, checker)
        plan = FlowVersions(elsewhere, catalog).plan(task.flow_digest, catalog.checker)
        call = Execution(plan, {"n": 7}).decide()
        assert isinstance(call, CallTool)
        assert call.fanout is not None
        [child] = call.fanout.children
        assert child.digest == old_pong
        assert checker.language.parse(child.definition).description == "Its input, back."
    finally:
        elsewhere.close()
