"""The Alembic migrations on both backends, from an empty database: `upgrade head` builds
exactly the schema of `taskrunner/store/tables.py` (`alembic check` finds no drift), `downgrade
base` removes it all, and a round trip gives back the same tables, indexes and append-only
trigger. Run as a user runs them (`uv run alembic ...` from the project directory) and
in-process, as taskrunner does on start."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, create_engine, inspect, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from taskrunner.catalog import FlowCatalog
from taskrunner.service import TaskService
from taskrunner.settings import normalize_database_url
from taskrunner.store.database import Database
from taskrunner.store.migrate import alembic_config, is_current, migrate
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.store.tables import Base

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = normalize_database_url(
    os.environ.get("TASKRUNNER_TEST_POSTGRES_URL")
    or "postgresql://postgres@127.0.0.1:5432/postgres"
)
TASKRUNNER_TABLES = {"flow_versions", "tasks", "task_steps"}
TASKS_INDEXES = {
    "ix_tasks_created_at_id": ["created_at", "id"],
    "ix_tasks_status_created_at_id": ["status", "created_at", "id"],
    "ix_tasks_flow_name_created_at_id": ["flow_name", "created_at", "id"],
    "ix_tasks_idempotency_key": ["idempotency_key"],
    "ix_tasks_pending_run_after": ["run_after"],
    "ix_tasks_running_lease_expires_at": ["lease_expires_at"],
    "ix_tasks_finished_at_id": ["finished_at", "id"],
    "ix_tasks_parent_id_created_at_id": ["parent_id", "created_at", "id"],
    "ix_tasks_parent_id_parent_seq_parent_attempt_child_key": [
        "parent_id",
        "parent_seq",
        "parent_attempt",
        "child_key",
    ],
}
JSON_COLUMNS = {
    ("flow_versions", "definition"),
    ("tasks", "input"),
    ("tasks", "output"),
    ("tasks", "checkpoint"),
    ("task_steps", "input"),
    ("task_steps", "output"),
}
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


# -- databases ----------------------------------------------------------------------------


def postgres_execute(*statements: str) -> None:
    engine = create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def new_postgres() -> Iterator[str]:
    name = f"taskrunner_test_mig_{uuid.uuid4().hex[:16]}"
    postgres_execute(f'CREATE DATABASE "{name}"')
    try:
        # As a user writes it; taskrunner and env.py turn it into postgresql+psycopg://.
        yield (
            make_url(POSTGRES_URL)
            .set(drivername="postgresql", database=name)
            .render_as_string(False)
        )
    finally:
        postgres_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own with nothing in it, as DATABASE_URL would name it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    yield from new_postgres()


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    yield from new_postgres()


def open_database(url: str) -> Database:
    return Database(normalize_database_url(url))


# -- alembic ------------------------------------------------------------------------------


def alembic(url: str, name: str, *args: str) -> None:
    """`alembic NAME ARGS` in-process, on a connection handed over as taskrunner does."""
    database = open_database(url)
    try:
        with database.engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            getattr(command, name)(config, *args)
    finally:
        database.dispose()


def alembic_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`uv run alembic ARGS` from the project directory, with DATABASE_URL set."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is not on PATH"
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DATABASE_URL" and not key.startswith("TASKRUNNER_")
    }
    env["DATABASE_URL"] = url
    done = subprocess.run(
        [uv, "run", "alembic", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"alembic {' '.join(args)}: {done.stderr}"
    assert "Traceback" not in done.stderr
    return done


def current(url: str) -> bool:
    database = open_database(url)
    try:
        return is_current(database)
    finally:
        database.dispose()


def snapshot(url: str) -> dict[str, Any]:
    """The schema as the database reports it: tables, columns, keys, indexes, checks,
    triggers (and, on PostgreSQL, the functions they run)."""
    database = open_database(url)
    try:
        inspector = inspect(database.engine)
        tables: dict[str, Any] = {}
        for table in sorted(inspector.get_table_names()):
            primary = inspector.get_pk_constraint(table)
            tables[table] = {
                "columns": [column["name"] for column in inspector.get_columns(table)],
                "primary_key": (primary["name"], primary["constrained_columns"]),
                "indexes": sorted(
                    (index["name"], tuple(index["column_names"]), bool(index["unique"]))
                    for index in inspector.get_indexes(table)
                ),
                "foreign_keys": sorted(
                    (
                        key["name"] or "",
                        tuple(key["constrained_columns"]),
                        key["referred_table"],
                        tuple(key["referred_columns"]),
                        (key.get("options") or {}).get("ondelete") or "",
                    )
                    for key in inspector.get_foreign_keys(table)
                ),
                "checks": sorted(
                    check["name"] or "" for check in inspector.get_check_constraints(table)
                ),
            }
        with database.engine.connect() as connection:
            if database.is_postgres:
                triggers = connection.execute(
                    text(
                        "SELECT tgname, tgrelid::regclass::text FROM pg_trigger "
                        "WHERE NOT tgisinternal ORDER BY 1"
                    )
                ).all()
                functions = connection.execute(
                    text(
                        "SELECT p.proname FROM pg_proc p "
                        "JOIN pg_namespace n ON n.oid = p.pronamespace "
                        "WHERE n.nspname = 'public' ORDER BY 1"
                    )
                ).all()
            else:
                triggers = connection.execute(
                    text(
                        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger' ORDER BY 1"
                    )
                ).all()
                functions = []
        return {
            "tables": tables,
            "triggers": [tuple(row) for row in triggers],
            "functions": [row[0] for row in functions],
        }
    finally:
        database.dispose()


def assert_steps_are_append_only(url: str, catalog: FlowCatalog) -> None:
    """The schema works for the service, and the database itself refuses to rewrite a step."""
    database = open_database(url)
    try:
        service = TaskService(
            SqlTaskRepository(database), catalog, wait=lambda _event, _seconds: False
        )
        task = service.run_task("echo_add", {"text": "hello", "a": 2, "b": 3}).task
        assert (task.status, task.output) == ("succeeded", {"text": "hello", "sum": 5})
        assert service.get_task(task.id) == task
        with (
            pytest.raises(DBAPIError, match="appended, never rewritten"),
            database.engine.begin() as connection,
        ):
            connection.execute(text("UPDATE task_steps SET attempt = attempt + 1"))
    finally:
        database.dispose()


# -- tests --------------------------------------------------------------------------------


def test_upgrade_head_matches_the_models(empty_url: str) -> None:
    assert not current(empty_url)
    alembic(empty_url, "upgrade", "head")
    assert current(empty_url)
    alembic(empty_url, "check")  # raises AutogenerateDiffsDetected on any drift
    schema = snapshot(empty_url)
    assert set(schema["tables"]) == {*TASKRUNNER_TABLES, "alembic_version"}
    assert schema["triggers"] == [("task_steps_append_only", "task_steps")]


def test_the_alembic_command_round_trip(empty_url: str, catalog: FlowCatalog) -> None:
    """upgrade head → downgrade base → upgrade head, as a user types them."""
    alembic_cli(empty_url, "upgrade", "head")
    assert current(empty_url)
    first = snapshot(empty_url)
    assert set(first["tables"]) >= TASKRUNNER_TABLES
    assert first["triggers"] == [("task_steps_append_only", "task_steps")]
    assert_steps_are_append_only(empty_url, catalog)

    alembic_cli(empty_url, "downgrade", "base")
    assert not current(empty_url)
    emptied = snapshot(empty_url)
    assert not set(emptied["tables"]) - {"alembic_version"}, emptied["tables"]
    assert emptied["triggers"] == []
    assert emptied["functions"] == []

    alembic_cli(empty_url, "upgrade", "head")
    assert current(empty_url)
    assert snapshot(empty_url) == first
    alembic(empty_url, "check")
    assert_steps_are_append_only(empty_url, catalog)


def test_an_in_process_round_trip_gives_back_the_same_schema(empty_url: str) -> None:
    alembic(empty_url, "upgrade", "head")
    first = snapshot(empty_url)
    alembic(empty_url, "downgrade", "base")
    assert not set(snapshot(empty_url)["tables"]) - {"alembic_version"}
    assert not current(empty_url)
    alembic(empty_url, "upgrade", "head")
    assert snapshot(empty_url) == first
    assert current(empty_url)


def test_migrating_twice_is_a_no_op(empty_url: str, catalog: FlowCatalog) -> None:
    database = open_database(empty_url)
    try:
        assert not is_current(database)
        migrate(database)
        assert is_current(database)
        first = snapshot(empty_url)
        service = TaskService(SqlTaskRepository(database), catalog)
        task = service.run_task("echo_add", {"text": "kept", "a": 1, "b": 1}).task
        migrate(database)
        alembic(empty_url, "upgrade", "head")
        assert is_current(database)
        assert snapshot(empty_url) == first
        assert service.get_task(task.id) == task
        with database.engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [row[0] for row in versions] == [HEAD]
    finally:
        database.dispose()


def test_the_tasks_table_has_its_listing_indexes(empty_url: str) -> None:
    alembic(empty_url, "upgrade", "head")
    database = open_database(empty_url)
    try:
        inspector = inspect(database.engine)
        indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("tasks")}
        names = {index["name"] for index in inspector.get_indexes("flow_versions")}
    finally:
        database.dispose()
    assert indexes == TASKS_INDEXES
    assert names == {"ix_flow_versions_name"}


def test_constraints_have_the_names_the_models_give_them(empty_url: str) -> None:
    """`alembic check` does not compare constraint names, so compare them here: a later
    migration that drops or alters a constraint finds it under the models' name."""
    alembic(empty_url, "upgrade", "head")
    expected = {
        table.name: {
            "primary_key": str(table.primary_key.name),
            "foreign_keys": sorted(str(key.name) for key in table.foreign_key_constraints),
            "checks": sorted(
                str(check.name) for check in table.constraints if isinstance(check, CheckConstraint)
            ),
            "indexes": sorted(str(index.name) for index in table.indexes),
        }
        for table in Base.metadata.sorted_tables
    }
    tables = snapshot(empty_url)["tables"]
    found = {
        name: {
            "primary_key": tables[name]["primary_key"][0],
            "foreign_keys": sorted(key[0] for key in tables[name]["foreign_keys"]),
            "checks": tables[name]["checks"],
            "indexes": sorted(index[0] for index in tables[name]["indexes"]),
        }
        for name in expected
    }
    assert found == expected


def test_json_columns_are_jsonb_on_postgres(empty_postgres: str) -> None:
    alembic(empty_postgres, "upgrade", "head")
    database = open_database(empty_postgres)
    try:
        inspector = inspect(database.engine)
        jsonb = {
            (table, column["name"])
            for table in TASKRUNNER_TABLES
            for column in inspector.get_columns(table)
            if isinstance(column["type"], JSONB)
        }
        with database.engine.connect() as connection:
            reported = connection.execute(
                text(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND data_type = 'jsonb'"
                )
            ).all()
    finally:
        database.dispose()
    assert jsonb == JSON_COLUMNS
    assert {(row[0], row[1]) for row in reported} == JSON_COLUMNS


def test_the_retention_index_built_beforehand_is_kept(empty_url: str) -> None:
    """On a large table an operator builds the index of migration 0003 first, without
    blocking writes (CONCURRENTLY on PostgreSQL); the migration then finds it and keeps it."""
    alembic(empty_url, "upgrade", "0002")
    database = open_database(empty_url)
    try:
        engine = database.autocommit if database.is_postgres else database.engine
        concurrently = "CONCURRENTLY " if database.is_postgres else ""
        with engine.connect() as connection:
            connection.execute(
                text(
                    f"CREATE INDEX {concurrently}ix_tasks_finished_at_id ON tasks "
                    "(finished_at, id) WHERE finished_at IS NOT NULL"
                )
            )
            connection.commit()
    finally:
        database.dispose()
    alembic(empty_url, "upgrade", "head")
    assert current(empty_url)
    alembic(empty_url, "check")
    indexes = {index[0] for index in snapshot(empty_url)["tables"]["tasks"]["indexes"]}
    assert "ix_tasks_finished_at_id" in indexes
