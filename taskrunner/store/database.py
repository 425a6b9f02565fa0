"""The connection to the database: one SQLAlchemy engine per process, made from settings."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import psycopg
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from taskrunner.errors import StoreError, StoreUnavailableError
from taskrunner.store.jsoncodec import dumps

_UNREACHABLE: Final = (OperationalError, InterfaceError, PoolTimeoutError, psycopg.OperationalError)
"""The database cannot be reached, or went away mid-call."""


class Database:
    """An engine with the settings each backend needs; `ping()` for readiness."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        options: dict[str, Any] = {}
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                _make_directory_of(Path(database))
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # No pre-ping: it costs a round trip per transaction. A connection that broke
            # is discarded by the pool when its error is seen, and the call fails once.
            options.update(pool_size=20, max_overflow=20, pool_recycle=3600)
        self.engine: Engine = create_engine(parsed, json_serializer=dumps, **options)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()


def translated[**P, R](method: Callable[P, R]) -> Callable[P, R]:
    """The store's errors instead of the driver's: `StoreUnavailableError` when the
    database cannot be reached (or is gone mid-call), `StoreError` for anything else."""

    @functools.wraps(method)
    def translating(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except _UNREACHABLE as exc:
            raise StoreUnavailableError(_reason(exc)) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailableError(_reason(exc)) from exc
            raise StoreError(_reason(exc)) from exc
        except (SQLAlchemyError, psycopg.Error) as exc:
            raise StoreError(_reason(exc)) from exc

    return translating


def _reason(error: Exception) -> str:
    cause = getattr(error, "orig", None) or error
    return "the database failed: " + " ".join(str(cause).split())[:300]


def _make_directory_of(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailableError(
            f"the SQLite database {path} cannot be made: {exc.strerror or exc}"
        ) from None


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is switched off (isolation_level None) and
    # `_sqlite_begin` issues BEGIN itself, so that SQLAlchemy's transactions are SQLite's.
    # Every write transaction here starts with its write, so it waits for the lock (up to
    # busy_timeout) instead of failing halfway with "database is locked".
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")
