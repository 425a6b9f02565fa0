"""Shared fixtures.

- `registry`, `checker`, `load_flow`, `echo_add`: the built-in tools and the shipped flows,
  through the same reader and validator as the CLI.
- `database_url`: a clean, migrated database for one test, on **both** backends: SQLite
  (a copy of a migrated template file) and PostgreSQL (a database cloned from a migrated
  template database). PostgreSQL is at `TASKRUNNER_TEST_POSTGRES_URL` (by default the
  local server, `postgresql://postgres@127.0.0.1:5432/postgres`); if it cannot be reached
  the tests fail, they never skip.
- `empty_database_url`: a brand-new database on each backend, with nothing in it.
- `service`, `client`: the task service and the HTTP API on that database.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from taskrunner.api import create_app
from taskrunner.catalog import FlowCatalog
from taskrunner.engine.flow import Flow
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import check_file
from taskrunner.service import TaskService
from taskrunner.settings import Settings, normalize_database_url
from taskrunner.store.database import Database
from taskrunner.store.migrate import migrate
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.tools import ToolRegistry, builtin_registry

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "taskrunner" / "flows"
PLUGINS = Path(__file__).resolve().parent / "plugins"
POSTGRES_URL = normalize_database_url(
    os.environ.get("TASKRUNNER_TEST_POSTGRES_URL")
    or "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def registry() -> ToolRegistry:
    return builtin_registry()


@pytest.fixture(scope="session")
def checker(registry: ToolRegistry) -> FlowChecker:
    return FlowChecker(registry)


@pytest.fixture(scope="session")
def load_flow(checker: FlowChecker) -> Callable[[str], Flow]:
    """Load the shipped flow `taskrunner/flows/NAME.yaml`, failing the test if it is not
    valid."""

    def load(name: str) -> Flow:
        report = check_file(FLOWS / f"{name}.yaml", checker)
        assert report.flow is not None, [str(problem) for problem in report.problems]
        return report.flow

    return load


@pytest.fixture(scope="session")
def echo_add(load_flow: Callable[[str], Flow]) -> Flow:
    return load_flow("echo_add")


@pytest.fixture(scope="session")
def catalog(checker: FlowChecker) -> FlowCatalog:
    return FlowCatalog.load(FLOWS, checker)


# -- databases ----------------------------------------------------------------------------


def _postgres_admin() -> URL:
    return make_url(POSTGRES_URL)


def _postgres_execute(*statements: str) -> None:
    engine = create_engine(_postgres_admin(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server of the tests (its maintenance database)."""
    return POSTGRES_URL


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A database migrated once per run; each test gets a clone of it."""
    name = f"taskrunner_template_{os.getpid()}"
    try:
        _postgres_execute(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {_postgres_admin().render_as_string()} cannot be reached "
            f"(set TASKRUNNER_TEST_POSTGRES_URL): {exc.orig}",
            pytrace=False,
        )
    database = Database(_postgres_admin().set(database=name).render_as_string(False))
    try:
        migrate(database)
    finally:
        database.dispose()
    yield name
    _postgres_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "taskrunner.sqlite3"
    database = Database(f"sqlite:///{path}")
    try:
        migrate(database)
    finally:
        database.dispose()
    return path


@pytest.fixture
def clean_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[str], AbstractContextManager[str]]:
    """`clean_database(BACKEND)`: the URL of a clean, migrated database of its own on
    `sqlite` or `postgresql`, for as long as the block runs."""

    @contextmanager
    def clean(backend: str) -> Iterator[str]:
        if backend == "sqlite":
            path = tmp_path / f"taskrunner-{uuid.uuid4().hex[:8]}.sqlite3"
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
            yield f"sqlite:///{path}"
            return
        with _new_postgres(template=request.getfixturevalue("postgres_template")) as url:
            yield url

    return clean


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest,
    clean_database: Callable[[str], AbstractContextManager[str]],
) -> Iterator[str]:
    """A clean, migrated database of its own for each test, on each backend."""
    with clean_database(request.param) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A brand-new database with nothing in it, on each backend: a SQLite path where no file
    is yet, or a PostgreSQL database just created."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'brand-new' / 'taskrunner.sqlite3'}"
        return
    with _new_postgres() as url:
        yield url


@contextmanager
def _new_postgres(template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (a clone of `template`, if given), dropped afterwards."""
    name = f"taskrunner_test_{uuid.uuid4().hex[:16]}"
    clone = f' TEMPLATE "{template}"' if template else ""
    _postgres_execute(f'CREATE DATABASE "{name}"{clone}')
    try:
        yield _postgres_admin().set(database=name).render_as_string(False)
    finally:
        _postgres_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    found = Database(database_url)
    yield found
    found.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, auto_migrate=False, flows_dir=FLOWS, worker_concurrency=0
    )


@pytest.fixture
def service(database: Database, catalog: FlowCatalog) -> TaskService:
    return TaskService(SqlTaskRepository(database), catalog, wait=lambda _event, _seconds: False)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


# -- generated flow documents -------------------------------------------------------------


def _chained_flow(states: int, refs: int = 1) -> bytes:
    """A large invalid flow: `states` choice states chained, each with `refs` rules reading
    the output of a task state that has not run on every path (long `ref.not-run` paths,
    many of them), each with a task state as its default."""
    lines = ["name: big", "input: {text: {type: string}}", "start: s0", "states:"]
    for i in range(states):
        lines += [f"  s{i}:", "    type: choice", "    rules:"]
        lines += [
            f"      - {{when: {{value: $states.t{(i * 7 + r) % states}.text, eq: x}}, "
            f"next: s{i + 1}}}"
            for r in range(refs)
        ]
        lines += [
            f"    default: t{i}",
            f"  t{i}: {{type: task, tool: echo, args: {{text: $input.text}}, next: s{i + 1}}}",
        ]
    lines.append(f"  s{states}: {{type: succeed}}")
    return "\n".join(lines).encode()


@pytest.fixture(scope="session")
def chained_flow() -> Callable[..., bytes]:
    """`chained_flow(STATES, REFS)`: a large invalid flow document, for bounds on validation."""
    return _chained_flow
