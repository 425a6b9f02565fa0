"""Alembic's environment: migrations run on the connection taskrunner hands over (when it
migrates on start, under its lock), or on DATABASE_URL (`uv run alembic ...`)."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from taskrunner.settings import Settings
from taskrunner.store.database import Database
from taskrunner.store.tables import Base

config = context.config
# Logging is set up from the ini file only if it configures logging: the project's alembic.ini
# does, a two-line one beside an installed taskrunner need not. When taskrunner migrates on
# start, the process owns its logging (`configure_logger` is off).
if (
    config.config_file_name is not None
    and config.attributes.get("configure_logger", True)
    and config.file_config.has_section("loggers")
):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        run_migrations(given)
        return
    database = Database(Settings.from_env().database_url)
    try:
        with database.engine.begin() as connection:
            if database.is_postgres:  # a migration is not held to everyday timeouts
                connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
                connection.exec_driver_sql("SET LOCAL lock_timeout = 0")
            run_migrations(connection)
    finally:
        database.dispose()


if context.is_offline_mode():
    raise SystemExit("taskrunner migrations run online only: drop --sql")
run_online()
