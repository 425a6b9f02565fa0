"""The flow versions that tasks pin, and the plans they run on.

A new task pins the version of its flow, the digest of its canonical definition; the
version is stored with the first task that needs it, carrying the versions of the
sub-flows it pins (`Flow.locked`). Tasks already started keep the
version they pinned when the flows are reloaded: the plans of every version this process
has known stay in hand, and any other is read back from the store by its digest, so a
flow changed or removed since still runs for them.
"""

from __future__ import annotations

from datetime import datetime

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.flow import Flow
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import TaskrunnerError
from taskrunner.store.records import FlowVersion
from taskrunner.store.repository import TaskRepository
from taskrunner.tools import JsonObject


class FlowVersions:
    """The versions and plans of one service's tasks, from its catalogs and its store."""

    def __init__(self, repository: TaskRepository, catalog: FlowCatalog) -> None:
        self.repository = repository
        self._plans = {entry.flow.digest: entry.plan for entry in catalog}
        self._versions: dict[str, FlowVersion] = {}

    def know(self, catalog: FlowCatalog) -> None:
        """Keep the plans of `catalog`'s flows in hand too, beside those known before."""
        for entry in catalog:
            self._plans.setdefault(entry.flow.digest, entry.plan)

    def version(self, flow: Flow, now: datetime) -> FlowVersion:
        """The flow version a new task runs, made once per version."""
        version = self._versions.get(flow.digest)
        if version is None:
            # With the sub-flow versions it pins: a resume runs them, whatever the files say.
            definition: JsonObject = flow.stored_definition()
            version = self._versions[flow.digest] = FlowVersion(
                flow.digest, flow.name, definition, now
            )
        return version

    def plan(self, digest: str, checker: FlowChecker) -> FlowPlan:
        """The plan of the version `digest`; one this process has not known is read back
        from the store and checked with `checker`, the current catalog's."""
        plan = self._plans.get(digest)
        if plan is None:
            definition = self.repository.flow_definition(digest)
            if definition is None:
                raise TaskrunnerError(f"the flow version {digest} is not stored")
            flow = checker.language.parse(definition)
            if flow.digest != digest:
                raise TaskrunnerError(f"the stored flow version {digest} does not match it")
            plan = self._plans[digest] = FlowPlan(flow, checker.registry)
        return plan
