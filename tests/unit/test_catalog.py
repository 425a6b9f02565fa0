"""The flows directory, file by file: a bad file (invalid, unreadable, a name already
taken) is skipped with its problems and the others load; a reload swaps the service's
catalog whole, and a task keeps the flow version it pinned. No database: the service
runs on the in-memory twin."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from taskrunner.catalog import FlowCatalog, directory_fingerprint
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import FlowCatalogError, InvalidFlowFileError, UnknownFlowError
from taskrunner.flowwatch import FlowReloader, FlowWatcher
from taskrunner.service import TaskService
from taskrunner.store.memory import InMemoryTaskRepository

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "taskrunner" / "flows"
HELLO = {"text": "hello", "a": 2, "b": 3}
BROKEN = """\
name: broken
start: echo
states:
  echo:
    type: task
    tool: echo
    args: {text: hi}
    next: ad
  add:
    type: task
    tool: multiply
    args: {a: 1, b: 2}
    next: done
  done: {type: succeed}
"""


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    """A flows directory holding a copy of the shipped `echo_add`."""
    directory = tmp_path / "flows"
    directory.mkdir()
    shutil.copyfile(FLOWS / "echo_add.yaml", directory / "echo_add.yaml")
    return directory


def test_an_invalid_file_is_skipped_with_its_problems(flows: Path, checker: FlowChecker) -> None:
    (flows / "broken.yaml").write_text(BROKEN)
    catalog = FlowCatalog.load(flows, checker)
    assert catalog.names() == ["echo_add"]
    [skipped] = catalog.skipped
    assert (skipped.path, skipped.name) == (flows / "broken.yaml", "broken")
    assert skipped.reason == "has 2 problems"
    assert [(p.file, p.code) for p in skipped.problems] == [
        ("broken.yaml", "flow.unknown-state"),
        ("broken.yaml", "tool.unknown"),
    ]
    assert skipped.warning() == (
        f"{flows / 'broken.yaml'} has 2 problems; skipped "
        f"(see them with `taskrunner validate-flow {flows / 'broken.yaml'}`)"
    )
    with pytest.raises(InvalidFlowFileError) as raised:
        catalog.get("broken")
    assert raised.value.http_status == 404
    assert raised.value.exit_status == 1
    assert "its file broken.yaml in the flows directory has 2 problems" in raised.value.message
    with pytest.raises(UnknownFlowError):
        catalog.get("nothing_like_it")


def test_a_file_that_does_not_parse_is_found_by_its_file_name(
    flows: Path, checker: FlowChecker
) -> None:
    (flows / "garbled.yaml").write_text("name: [unclosed\n")
    catalog = FlowCatalog.load(flows, checker)
    [skipped] = catalog.skipped
    assert skipped.name is None
    assert skipped.reason == "has 1 problem"
    with pytest.raises(InvalidFlowFileError, match=r"garbled\.yaml"):
        catalog.get("garbled")


def test_a_second_file_with_a_flow_name_already_taken_is_skipped(
    flows: Path, checker: FlowChecker
) -> None:
    shutil.copyfile(flows / "echo_add.yaml", flows / "zz_copy.yaml")
    catalog = FlowCatalog.load(flows, checker)
    assert catalog.get("echo_add").path == flows / "echo_add.yaml"
    [skipped] = catalog.skipped
    assert skipped.path == flows / "zz_copy.yaml"
    assert skipped.reason == "defines the flow 'echo_add', which echo_add.yaml defines first"
    assert skipped.problems == ()
    assert "(see them" not in skipped.warning()


def test_unreadable_files_are_skipped(flows: Path, checker: FlowChecker) -> None:
    (flows / "dangling.yaml").symlink_to(flows / "nowhere.yaml")
    (flows / "folder.yaml").mkdir()
    catalog = FlowCatalog.load(flows, checker)
    assert catalog.names() == ["echo_add"]
    reasons = {item.path.name: item.reason for item in catalog.skipped}
    assert reasons == {
        "dangling.yaml": "cannot be read: No such file or directory",
        "folder.yaml": "cannot be read: a directory",
    }
    with pytest.raises(InvalidFlowFileError, match="cannot be read: a directory"):
        catalog.get("folder")


def test_a_flows_directory_that_does_not_exist_is_an_error(
    tmp_path: Path, checker: FlowChecker
) -> None:
    with pytest.raises(FlowCatalogError, match="does not exist") as raised:
        FlowCatalog.load(tmp_path / "missing", checker)
    assert raised.value.exit_status == 1
    (tmp_path / "a-file").write_text("")
    with pytest.raises(FlowCatalogError, match="cannot be listed"):
        FlowCatalog.load(tmp_path / "a-file", checker)


def test_the_fingerprint_changes_with_any_file_and_reads_none(flows: Path) -> None:
    first = directory_fingerprint(flows)
    assert [name for name, *_ in first] == ["echo_add.yaml"]
    assert directory_fingerprint(flows) == first
    (flows / "notes.txt").write_text("not a flow")
    assert directory_fingerprint(flows) == first
    path = flows / "echo_add.yaml"
    path.write_text(path.read_text() + "\n")
    edited = directory_fingerprint(flows)
    assert edited != first
    (flows / "broken.yaml").write_text(BROKEN)
    assert len(directory_fingerprint(flows)) == 2


# -- reloading ------------------------------------------------------------------------------


def _service(flows: Path, checker: FlowChecker) -> TaskService:
    return TaskService(
        InMemoryTaskRepository(),
        FlowCatalog.load(flows, checker),
        wait=lambda _event, _seconds: False,
    )


def test_a_reload_swaps_the_catalog_and_says_each_new_problem_once(
    flows: Path, checker: FlowChecker
) -> None:
    service = _service(flows, checker)
    said: list[str] = []
    reloader = FlowReloader(flows, service, warn=said.append)
    first = service.catalog
    assert reloader.reload(force=False) is first  # nothing changed: nothing read
    shutil.copyfile(FLOWS / "safe_divide.yaml", flows / "safe_divide.yaml")
    (flows / "broken.yaml").write_text(BROKEN)
    second = reloader.reload(force=False)
    assert service.catalog is second
    assert second.names() == ["echo_add", "safe_divide"]
    assert said == [second.skipped[0].warning()]
    reloader.reload()  # forced, the same files: the same problem is not said again
    assert len(said) == 1
    assert service.run_task("safe_divide", {"dividend": 6, "divisor": 3}).task.status == (
        "succeeded"
    )


def test_a_queued_task_runs_its_pinned_version_after_its_flow_changes_or_goes(
    flows: Path, checker: FlowChecker
) -> None:
    service = _service(flows, checker)
    reloader = FlowReloader(flows, service, warn=lambda _: None)
    path = flows / "echo_add.yaml"
    queued = service.enqueue_task("echo_add", HELLO).task
    path.write_text(path.read_text().replace("sum: $states.add.sum", "total: $states.add.sum"))
    reloader.reload()
    changed = service.enqueue_task("echo_add", HELLO).task
    assert changed.flow_version != queued.flow_version
    path.unlink()
    reloader.reload()
    with pytest.raises(UnknownFlowError):
        service.enqueue_task("echo_add", HELLO)
    for claimed in service.claim(10):
        service.resume(claimed)
    old, new = service.get_task(queued.id), service.get_task(changed.id)
    assert (old.status, old.output) == ("succeeded", {"text": "hello", "sum": 5})
    assert (new.status, new.output) == ("succeeded", {"text": "hello", "total": 5})


def _eventually(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_watcher_polls_and_wakes(flows: Path, checker: FlowChecker) -> None:
    service = _service(flows, checker)
    watcher = FlowWatcher(FlowReloader(flows, service, warn=lambda _: None), every=0.05)
    watcher.start()
    try:
        shutil.copyfile(FLOWS / "safe_divide.yaml", flows / "safe_divide.yaml")
        assert _eventually(lambda: "safe_divide" in service.catalog.names())
    finally:
        watcher.stop()

    off = FlowWatcher(FlowReloader(flows, service, warn=lambda _: None), every=0)
    off.start()
    try:
        (flows / "safe_divide.yaml").unlink()
        time.sleep(0.3)
        assert "safe_divide" in service.catalog.names()  # no poll: nothing seen
        off.wake()  # as SIGHUP does
        assert _eventually(lambda: "safe_divide" not in service.catalog.names())
    finally:
        off.stop()


def test_a_vanished_directory_keeps_the_flows_loaded(
    flows: Path, checker: FlowChecker, caplog: pytest.LogCaptureFixture
) -> None:
    service = _service(flows, checker)
    reloader = FlowReloader(flows, service, warn=lambda _: None)
    before = service.catalog
    shutil.rmtree(flows)
    with pytest.raises(FlowCatalogError):
        reloader.reload()
    assert service.catalog is before
    watcher = FlowWatcher(reloader, every=0.05)
    watcher.start()
    try:
        time.sleep(0.4)  # several polls, one line
    finally:
        watcher.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "taskrunner.flows"]
    assert len(said) == 1, said
    assert "does not exist" in said[0]
    assert said[0].endswith("; the flows loaded before are kept")


WARNED = """\
name: warned
start: echo
states:
  echo:
    type: task
    tool: echo
    args: {text: hi}
    catch:
      - errors: [DivisionByZero]
        next: failed
    next: done
  done: {type: succeed}
  failed: {type: fail, error: EchoFailed}
"""


def test_a_flow_with_warnings_loads_and_each_warning_is_said_once(
    flows: Path, checker: FlowChecker
) -> None:
    service = _service(flows, checker)
    said: list[str] = []
    reloader = FlowReloader(flows, service, warn=said.append)
    (flows / "warned.yaml").write_text(WARNED)
    catalog = reloader.reload()
    assert catalog.names() == ["echo_add", "warned"]
    assert not catalog.skipped
    [warning] = catalog.get("warned").warnings
    assert (warning.code, warning.severity, warning.line) == ("error.unknown-kind", "warning", 9)
    assert said == [f"{flows / 'warned.yaml'} loaded with a warning: {warning}"]
    reloader.reload()
    assert len(said) == 1
