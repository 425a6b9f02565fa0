"""Migrating the database on start, safely when several processes start together.

On PostgreSQL the upgrade runs in one transaction holding an advisory lock, so concurrent
starts queue behind each other and the later ones find nothing left to do. On SQLite an
exclusive lock on a file beside the database does the same for processes on one machine.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from taskrunner.errors import MigrationError, StoreError
from taskrunner.store.database import Database, sqlite_cannot_be_made, translated

# The migrations ship inside the package, so an installed taskrunner finds them wherever it
# runs. Found here, beside this module, rather than through Alembic's `package:dir` form,
# which registers an atexit hook each time it is resolved.
MIGRATIONS: Final = Path(__file__).resolve().with_name("migrations")
ADVISORY_LOCK: Final = 0x7461736B72756E  # "taskrun"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["configure_logger"] = False
    return config


@translated
def migrate(database: Database) -> None:
    """Bring the database to the newest revision (a no-op when it is there already)."""
    config = alembic_config()
    if database.is_postgres:
        with database.engine.begin() as connection:
            # A migration may rewrite a large table, and waits its turn behind another
            # process's: neither is held to the timeouts of everyday statements.
            connection.execute(text("SET LOCAL statement_timeout = 0"))
            connection.execute(text("SET LOCAL lock_timeout = 0"))
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return
    lock_path = _sqlite_lock_path(database)
    try:
        lock_file = open(lock_path, "a+b")  # noqa: SIM115 - closed by the `with` below
    except (OSError, ValueError) as exc:
        raise StoreError(sqlite_cannot_be_made(lock_path, exc)) from None
    with lock_file as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with database.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def require_current(database: Database) -> None:
    """Refuse, clearly, a database that is not at the newest revision."""
    if not is_current(database):
        raise MigrationError(
            "the database is not migrated to the newest revision: run "
            "`uv run alembic upgrade head`, or let taskrunner migrate it on start "
            "(unset TASKRUNNER_AUTO_MIGRATE)"
        )


@translated
def is_current(database: Database) -> bool:
    """Whether the database is at the newest revision."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head


def _sqlite_lock_path(database: Database) -> Path:
    name = database.engine.url.database
    if not name or name == ":memory:":
        return Path("/tmp") / "taskrunner-memory.migrate.lock"  # noqa: S108 - nothing is kept in it
    return Path(name + ".migrate-lock")
