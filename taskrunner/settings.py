"""Configuration: read once from the environment, validated, then passed around as a value.

- `DATABASE_URL`: `postgresql://…` (through psycopg 3) or `sqlite:///path`; unset, the
  embedded SQLite file `var/taskrunner.sqlite3`;
- `TASKRUNNER_AUTO_MIGRATE`: `0` not to migrate the database on start (default `1`);
- `TASKRUNNER_FLOWS_DIR`: the directory of flow files, `*.yaml` (default: the example
  flows shipped in the package, `taskrunner/flows`);
- `TASKRUNNER_LEASE_SECONDS`: how long a worker's hold on a task lasts unless renewed
  (default 30): a crashed worker's tasks are taken over after at most this long;
- `TASKRUNNER_POLL_SECONDS`: how often idle workers look for due tasks besides being
  woken by notifications (default 1);
- `TASKRUNNER_WORKER_CONCURRENCY`: how many queued tasks the API's own, in-process
  worker runs at once; `0` for none (default 2);
- `TASKRUNNER_BODY_TIMEOUT_SECONDS`: how long a client may take to send a request's body
  before it is answered 408 (default 15);
- `TASKRUNNER_HEADER_TIMEOUT_SECONDS`: how long a client of `taskrunner serve` may take to
  send a request's line and headers before it is answered 408 (default 10);
- `TASKRUNNER_KEEP_ALIVE_SECONDS`: how long `taskrunner serve` keeps an idle connection
  open for the client's next request (default 5).

Relative paths in these variables are taken from the current directory. Of the defaults,
only the embedded SQLite file depends on it (it is kept under the current directory).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from taskrunner.errors import SettingsError

DEFAULT_SQLITE_PATH: Final = Path("var") / "taskrunner.sqlite3"
DEFAULT_FLOWS_DIR: Final = Path(__file__).resolve().with_name("flows")
MAX_BODY_BYTES: Final = 1024 * 1024
BODY_TIMEOUT_SECONDS: Final = 15.0
HEADER_TIMEOUT_SECONDS: Final = 10.0
KEEP_ALIVE_SECONDS: Final = 5.0

_TRUE: Final = {"1", "true", "yes", "on"}
_FALSE: Final = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Settings:
    """Everything taskrunner reads from its environment."""

    database_url: str
    database_is_default: bool = False
    auto_migrate: bool = True
    flows_dir: Path = DEFAULT_FLOWS_DIR
    max_body_bytes: int = MAX_BODY_BYTES
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    worker_concurrency: int = 2
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS
    header_timeout_seconds: float = HEADER_TIMEOUT_SECONDS
    keep_alive_seconds: float = KEEP_ALIVE_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        url = env.get("DATABASE_URL", "").strip()
        return cls(
            database_url=normalize_database_url(url) if url else default_database_url(),
            database_is_default=not url,
            auto_migrate=_flag(env, "TASKRUNNER_AUTO_MIGRATE", default=True),
            flows_dir=Path(env.get("TASKRUNNER_FLOWS_DIR") or DEFAULT_FLOWS_DIR),
            lease_seconds=_seconds(env, "TASKRUNNER_LEASE_SECONDS", default=30.0),
            poll_seconds=_seconds(env, "TASKRUNNER_POLL_SECONDS", default=1.0),
            worker_concurrency=_count(env, "TASKRUNNER_WORKER_CONCURRENCY", default=2),
            body_timeout_seconds=_seconds(
                env, "TASKRUNNER_BODY_TIMEOUT_SECONDS", default=BODY_TIMEOUT_SECONDS
            ),
            header_timeout_seconds=_seconds(
                env, "TASKRUNNER_HEADER_TIMEOUT_SECONDS", default=HEADER_TIMEOUT_SECONDS
            ),
            keep_alive_seconds=_seconds(
                env, "TASKRUNNER_KEEP_ALIVE_SECONDS", default=KEEP_ALIVE_SECONDS
            ),
        )

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def describe_database(self) -> str:
        """Which database is in use, for people, with any password hidden."""
        if self.database_is_default:
            return (
                f"the embedded SQLite database {DEFAULT_SQLITE_PATH} "
                "(set DATABASE_URL to use PostgreSQL)"
            )
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)


def default_database_url() -> str:
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def normalize_database_url(url: str) -> str:
    """A SQLAlchemy URL for PostgreSQL through psycopg 3, or for SQLite."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise SettingsError(f"DATABASE_URL {url!r} is not a URL such as postgresql://host/db")
    if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    if scheme in ("sqlite", "sqlite+pysqlite"):
        return url
    raise SettingsError(
        f"DATABASE_URL uses {scheme!r}; taskrunner supports postgresql:// and sqlite:///"
    )


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name}={value!r}: use 1 or 0")


def _seconds(env: Mapping[str, str], name: str, *, default: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0.05 <= seconds <= 86_400:
        raise SettingsError(f"{name}={value!r}: use a number of seconds from 0.05 to 86400")
    return seconds


def _count(env: Mapping[str, str], name: str, *, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) > 256:
        raise SettingsError(f"{name}={value!r}: use a whole number from 0 to 256")
    return int(value)
