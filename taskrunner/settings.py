"""Configuration: read once from the environment, validated, then passed around as a value.

- `DATABASE_URL`: `postgresql://…` (through psycopg 3) or `sqlite:///path`; unset, the
  embedded SQLite file `var/taskrunner.sqlite3`;
- `TASKRUNNER_AUTO_MIGRATE`: `0` not to migrate the database on start (default `1`);
- `TASKRUNNER_FLOWS_DIR`: the directory of flow files, `*.yaml` (default `flows`).

Relative paths are taken from the current directory: run taskrunner from the project
directory, as the README does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from taskrunner.errors import TaskrunnerError

DEFAULT_SQLITE_PATH: Final = Path("var") / "taskrunner.sqlite3"
DEFAULT_FLOWS_DIR: Final = Path("flows")
MAX_BODY_BYTES: Final = 1024 * 1024

_TRUE: Final = {"1", "true", "yes", "on"}
_FALSE: Final = {"0", "false", "no", "off"}


class SettingsError(TaskrunnerError):
    """The configuration is not valid."""


@dataclass(frozen=True)
class Settings:
    """Everything taskrunner reads from its environment."""

    database_url: str
    database_is_default: bool = False
    auto_migrate: bool = True
    flows_dir: Path = DEFAULT_FLOWS_DIR
    max_body_bytes: int = MAX_BODY_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        url = env.get("DATABASE_URL", "").strip()
        return cls(
            database_url=normalize_database_url(url) if url else default_database_url(),
            database_is_default=not url,
            auto_migrate=_flag(env, "TASKRUNNER_AUTO_MIGRATE", default=True),
            flows_dir=Path(env.get("TASKRUNNER_FLOWS_DIR") or DEFAULT_FLOWS_DIR),
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
