"""The store port's child tasks, on all three adapters: a fan-out call's children are
stored once per position, found again by the call, held back until made due, claimed by
the call, hidden from the task list unless asked for by parent, cancelled with their
parent, and purged with it, never alone."""

from __future__ import annotations

import uuid
from dataclasses import replace

from test_task_repository import (
    LEASE_ENDS,
    OWNER,
    T0,
    at,
    columns,
    flow_version,
    pending_task,
    running_task,
    step_record,
    still_running,
    stored,
    task_record,
)

from taskrunner.store.records import Progress, TaskFilter, TaskRecord
from taskrunner.store.repository import TaskRepository


def child_of(parent: TaskRecord, key: str, seq: int = 3, attempt: int = 1) -> TaskRecord:
    """A held-back child of the parent's call (`seq`, `attempt`) at position `key`."""
    return task_record(
        "pending",
        flow="branch",
        parent_id=parent.id,
        parent_seq=seq,
        parent_attempt=attempt,
        child_key=key,
        deadline_at=at(600),
    )


def spawned(
    repository: TaskRepository, parent: TaskRecord, *keys: str, seq: int = 3
) -> list[TaskRecord]:
    children = [child_of(parent, key, seq) for key in keys]
    found = repository.spawn_children(children, [flow_version("branch")])
    return sorted(found, key=lambda task: task.child_key or "")


def test_spawned_children_read_back_whole(repository: TaskRepository) -> None:
    parent = stored(repository, running_task())
    child = child_of(parent, "item:0")
    found = repository.spawn_children([child], [flow_version("branch")])
    assert [columns(task) for task in found] == [columns(child)]
    assert columns(repository.get_task(child.id)) == columns(child)
    assert repository.flow_definition(child.flow_digest) == flow_version("branch").definition


def test_spawning_again_returns_the_stored_children_and_adds_none(
    repository: TaskRepository,
) -> None:
    parent = stored(repository, running_task())
    first = spawned(repository, parent, "item:0", "item:1")
    again = spawned(repository, parent, "item:0", "item:1", "item:2")
    assert [task.id for task in again[:2]] == [task.id for task in first]
    assert [task.child_key for task in again] == ["item:0", "item:1", "item:2"]
    assert len(repository.children_of(parent.id, 3, 1)) == 3


def test_children_are_found_by_their_call_only(repository: TaskRepository) -> None:
    parent = stored(repository, running_task())
    spawned(repository, parent, "branch:a", "branch:b")
    spawned(repository, parent, "branch:a", seq=7)
    retried = [child_of(parent, "branch:a", 3, attempt=2)]
    repository.spawn_children(retried, [flow_version("branch")])
    keys = sorted(task.child_key or "" for task in repository.children_of(parent.id, 3, 1))
    assert keys == ["branch:a", "branch:b"]
    assert [task.id for task in repository.children_of(parent.id, 3, 2)] == [retried[0].id]
    assert len(repository.children_of(parent.id, 7, 1)) == 1
    assert repository.children_of(uuid.uuid4(), 3, 1) == []


def test_held_back_children_are_claimed_only_once_made_due(repository: TaskRepository) -> None:
    parent = stored(repository, running_task())
    first, second = spawned(repository, parent, "item:0", "item:1")
    assert repository.claim(OWNER, 10, at(5), LEASE_ENDS) == []
    assert repository.claim_children(OWNER, parent.id, 3, 1, 10, at(5), LEASE_ENDS) == []
    assert repository.make_due([first.id], at(5)) == 1
    assert repository.make_due([first.id], at(6)) == 0
    claimed = repository.claim_children(OWNER, parent.id, 3, 1, 10, at(6), LEASE_ENDS)
    assert [task.id for task in claimed] == [first.id]
    assert claimed[0].status == "running"
    assert claimed[0].lease_owner == OWNER
    repository.make_due([second.id], at(7))
    assert [task.id for task in repository.claim(OWNER, 10, at(8), LEASE_ENDS)] == [second.id]


def test_children_of_another_call_are_not_claimed_for_this_one(
    repository: TaskRepository,
) -> None:
    parent = stored(repository, running_task())
    other = spawned(repository, parent, "item:0", seq=9)
    repository.make_due([other[0].id], at(1))
    assert repository.claim_children(OWNER, parent.id, 3, 1, 10, at(2), LEASE_ENDS) == []


def test_children_are_listed_by_parent_and_never_with_the_tasks(
    repository: TaskRepository,
) -> None:
    parent = stored(repository, running_task())
    loner = stored(repository, pending_task(created_at=at(1)))
    children = spawned(repository, parent, "item:0", "item:1", "item:2")
    top = repository.list_tasks(TaskFilter(), 10, None)
    assert {item.id for item in top.items} == {parent.id, loner.id}
    assert repository.list_tasks(TaskFilter(status="pending"), 10, None).items[0].id == loner.id
    page = repository.list_tasks(TaskFilter(parent=parent.id), 2, None)
    rest = repository.list_tasks(TaskFilter(parent=parent.id), 2, page.after)
    listed = [item.id for item in (*page.items, *rest.items)]
    assert sorted(listed) == sorted(task.id for task in children)
    assert rest.after is None
    assert repository.list_tasks(TaskFilter(parent=loner.id), 10, None).items == ()


def test_cancelling_a_parent_cancels_its_children_and_theirs(
    repository: TaskRepository,
) -> None:
    parent = stored(repository, running_task())
    waiting, busy = spawned(repository, parent, "item:0", "item:1")
    repository.make_due([busy.id], at(1))
    repository.claim(OWNER, 1, at(2), LEASE_ENDS)
    grandchild = child_of(replace(busy, status="running"), "branch:x")
    repository.spawn_children([grandchild], [flow_version("branch")])
    assert repository.cancel(parent.id, at(3)) == "requested"
    assert repository.get_task(waiting.id).status == "cancelled"  # type: ignore[union-attr]
    busy_now = repository.get_task(busy.id)
    assert busy_now is not None
    assert (busy_now.status, busy_now.cancel_requested) == ("running", True)
    assert repository.get_task(grandchild.id).status == "cancelled"  # type: ignore[union-attr]


def test_cancelling_a_call_leaves_the_parent_and_other_calls_be(
    repository: TaskRepository,
) -> None:
    parent = stored(repository, running_task())
    these = spawned(repository, parent, "item:0", "item:1")
    others = spawned(repository, parent, "item:0", seq=8)
    repository.cancel_children(parent.id, 3, 1, at(4))
    assert {repository.get_task(task.id).status for task in these} == {"cancelled"}  # type: ignore[union-attr]
    assert repository.get_task(others[0].id).status == "pending"  # type: ignore[union-attr]
    assert repository.get_task(parent.id).status == "running"  # type: ignore[union-attr]


def test_a_parent_is_purged_with_its_children_and_a_child_never_alone(
    repository: TaskRepository,
) -> None:
    parent = stored(repository, running_task())
    children = spawned(repository, parent, "item:0", "item:1")
    for child in children:
        repository.make_due([child.id], at(1))
    for child in repository.claim(OWNER, 10, at(2), LEASE_ENDS):
        repository.record_step(OWNER, step_record(child.id, 1), still_running(3))
        done = Progress("succeeded", "done", at(4), output={}, finished_at=at(4))
        repository.record_step(OWNER, step_record(child.id, 2), done)
    # Finished children of a running parent: nothing to purge.
    assert repository.purge(at(100), ["succeeded"], 10).tasks == 0
    done = Progress("succeeded", "done", at(5), output={}, finished_at=at(5))
    repository.record_step(OWNER, step_record(parent.id, 1), done)
    counted = repository.count_purgeable(at(100), ["succeeded"])
    assert (counted.tasks, counted.steps) == (3, 5)
    purged = repository.purge(at(100), ["succeeded"], 1)
    assert (purged.tasks, purged.steps) == (3, 5)
    assert all(repository.get_task(task.id) is None for task in (parent, *children))
    assert repository.steps_of(children[0].id) == []


def test_a_child_keeps_its_parent_and_position(repository: TaskRepository) -> None:
    parent = stored(repository, running_task())
    (child,) = spawned(repository, parent, "branch:left")
    found = repository.get_task(child.id)
    assert found is not None
    assert (found.parent_id, found.parent_seq, found.parent_attempt, found.child_key) == (
        parent.id,
        3,
        1,
        "branch:left",
    )
    assert found.deadline_at == at(600)
    assert found.created_at == T0
