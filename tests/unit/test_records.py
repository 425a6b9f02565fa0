"""The store's records hold their tables' columns, by name and no more: rows become
records, and records rows, without a list of columns anywhere else."""

from __future__ import annotations

import pytest

from taskrunner.store.records import FlowVersion, StepRecord, TaskHead, TaskRecord, field_names
from taskrunner.store.tables import Base


@pytest.mark.parametrize(
    ("record", "table"),
    [(TaskRecord, "tasks"), (StepRecord, "task_steps"), (FlowVersion, "flow_versions")],
)
def test_a_record_is_its_tables_columns(record: type[object], table: str) -> None:
    columns = list(Base.metadata.tables[table].columns.keys())
    assert sorted(field_names(record)) == sorted(columns)  # type: ignore[arg-type]


def test_a_head_is_a_task_without_its_data() -> None:
    head = set(field_names(TaskHead))
    assert head < set(field_names(TaskRecord))
    assert {"input", "output"}.isdisjoint(head)
