"""The connection to the database: one SQLAlchemy engine per process, made from settings."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import psycopg
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from taskrunner.errors import StoreError, StoreUnavailableError
from taskrunner.settings import Timeouts
from taskrunner.store.jsoncodec import dumps

DEFAULT_TIMEOUTS: Final = Timeouts()
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

    def __init__(self, url: str, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self.timeouts = timeouts
        if self.dialect == "sqlite":
            database = parsed.database
            in_file = bool(database) and database != ":memory:"
            if in_file:
                _make_directory_of(Path(str(database)))
            self.connect_args: dict[str, Any] = {}
            self.engine: Engine = create_engine(
                parsed,
                json_serializer=dumps,
                hide_parameters=True,
                # An in-memory database has one connection, and no pool to wait for.
                **({"pool_timeout": timeouts.pool} if in_file else {}),
                connect_args={"check_same_thread": False, "timeout": timeouts.lock},
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
            self.autocommit: Engine = self.engine
            return
        # No pre-ping: it costs a round trip per transaction. A connection that broke is
        # discarded by the pool when its error is seen, and the call fails once.
        self.connect_args = postgres_connect_args(timeouts)
        common: dict[str, Any] = {
            "json_serializer": dumps,
            "hide_parameters": True,
            "pool_recycle": 3600,
            "pool_timeout": timeouts.pool,
            "connect_args": self.connect_args,
        }
        self.engine = create_engine(parsed, pool_size=4, max_overflow=16, **common)
        self.autocommit = create_engine(
            parsed, isolation_level="AUTOCOMMIT", pool_size=16, max_overflow=24, **common
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


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite database URL; None for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def postgres_connect_args(timeouts: Timeouts) -> dict[str, Any]:
    """libpq's connection parameters for these timeouts. The statement and lock timeouts are
    the server's (`SET` at connection start); a transaction left open and idle (its client
    paused or gone) is ended by the server after a minute, so it never holds locks for
    long."""
    milliseconds = {
        "statement_timeout": timeouts.statement,
        "lock_timeout": timeouts.lock,
        "idle_in_transaction_session_timeout": max(60.0, timeouts.statement),
    }
    options = " ".join(f"-c {name}={round(value * 1000)}" for name, value in milliseconds.items())
    # libpq counts whole seconds, and takes less than 2 as 2.
    return {"connect_timeout": max(2, math.ceil(timeouts.connect)), "options": options}


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
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise StoreError(sqlite_cannot_be_made(path, exc)) from None


def sqlite_cannot_be_made(path: Path, error: OSError | ValueError) -> str:
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return f"the SQLite database {path} cannot be made: {reason}"


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
