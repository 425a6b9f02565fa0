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
    """The engines a process talks to its database with; `ping()` for readiness.

    On PostgreSQL there are two pools: `engine` for transactions of several statements,
    and `autocommit` for single statements, each its own transaction, which is most of the
    work (every write of the hot path, and every read). A pool of its own keeps them from
    switching a connection's mode on each checkout, which costs round trips. On SQLite,
    both are the one engine.
    """

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                _make_directory_of(Path(database))
            self.engine: Engine = create_engine(
                parsed,
                json_serializer=dumps,
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
            self.autocommit: Engine = self.engine
            return
        # No pre-ping: it costs a round trip per transaction. A connection that broke is
        # discarded by the pool when its error is seen, and the call fails once.
        self.engine = create_engine(
            parsed, json_serializer=dumps, pool_size=4, max_overflow=16, pool_recycle=3600
        )
        self.autocommit = create_engine(
            parsed,
            json_serializer=dumps,
            isolation_level="AUTOCOMMIT",
            pool_size=16,
            max_overflow=24,
            pool_recycle=3600,
        )

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def ping(self) -> bool:
        try:
            with self.autocommit.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()
        self.autocommit.dispose()


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
