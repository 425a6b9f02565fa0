"""Configuration: read once from the environment, validated, then passed around as a value.

- `DATABASE_URL`: `postgresql://…` (through psycopg 3) or `sqlite:///path`; unset, the
  embedded SQLite file `var/taskrunner.sqlite3`;
- `TASKRUNNER_AUTO_MIGRATE`: `0` not to migrate the database on start (default `1`);
- `TASKRUNNER_FLOWS_DIR`: the directory of flow files, `*.yaml` (default: the example
  flows shipped in the package, `taskrunner/flows`);
- `TASKRUNNER_FLOWS_RELOAD_SECONDS`: how often a server or worker looks for changed flow
  files, and reloads them if any changed (default 2); `0` not to look (`SIGHUP` and
  `POST /flows/reload` still reload);
- `TASKRUNNER_LEASE_SECONDS`: how long a worker's hold on a task lasts unless renewed
  (default 30): a crashed worker's tasks are taken over after at most this long;
- `TASKRUNNER_POLL_SECONDS`: how often idle workers look for due tasks besides being
  woken by notifications (default 1);
- `TASKRUNNER_WORKER_CONCURRENCY`: how many queued tasks the API's own, in-process
  worker runs at once; `0` for none (default 2);
- `TASKRUNNER_SYNC_WAIT_SECONDS`: the longest a synchronous `POST /tasks` runs its task
  before answering; past it, or when a retry's delay would outlast it, the task goes on
  on the queue and the answer is `202` with `Location` (default 30);
- `TASKRUNNER_REQUEST_TIMEOUT_SECONDS`: the longest a request waits on the database
  before it is answered `503` with `Retry-After` (default 10);
- `TASKRUNNER_DB_CONNECT_TIMEOUT_SECONDS`, `TASKRUNNER_DB_STATEMENT_TIMEOUT_SECONDS`,
  `TASKRUNNER_DB_LOCK_TIMEOUT_SECONDS`, `TASKRUNNER_DB_POOL_TIMEOUT_SECONDS`: how long
  to wait for a new connection (default 5), for one statement (default 30), for a lock
  (default 5) and for a free connection of the pool (default 5). See `Timeouts`.
- `TASKRUNNER_API_KEYS_FILE`: a file of API keys, one per line, `NAME SCOPE sha256:HEX
  [revoked]` (see `apikeys.py`); `TASKRUNNER_API_KEYS`: the same lines, separated by `;`
  or new lines. Either one turns authentication on; unset (or empty), the API is open and
  `taskrunner serve` binds to loopback addresses only.
- `TASKRUNNER_RETENTION`: delete finished tasks (and their steps) this long after they
  finished, such as `30d`, `12h` or `90m`, in the background of every process that runs
  a worker; unset or `off`, nothing is deleted (the default);
- `TASKRUNNER_RETENTION_INTERVAL`: seconds between two rounds of that deletion (default
  60).
- `TASKRUNNER_BODY_TIMEOUT_SECONDS`: how long a client may take to send a request's body
  before it is answered 408 (default 15);
- `TASKRUNNER_HEADER_TIMEOUT_SECONDS`: how long a client of `taskrunner serve` may take to
  send a request's line and headers before it is answered 408 (default 10);
- `TASKRUNNER_KEEP_ALIVE_SECONDS`: how long `taskrunner serve` keeps an idle connection
  open for the client's next request (default 5).
- `TASKRUNNER_LOG_FORMAT`: `text` (default) or `json`, the form of the log's lines on
  stderr; `TASKRUNNER_LOG_LEVEL`: `DEBUG`, `INFO`, `WARNING` or `ERROR`, the least
  severe line written (default `INFO` for `serve` and `worker`, `WARNING` for the other
  commands, which print their own result). `LogSettings` reads them on their own, so that
  a bad value stops every command, not only those that read the rest.

Relative paths in these variables are taken from the current directory. Of the defaults,
only the embedded SQLite file depends on it (it is kept under the current directory).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final, Literal, get_args
from urllib.parse import unquote

from taskrunner.apikeys import ApiKeyring, parse_keys
from taskrunner.durations import parse_duration
from taskrunner.errors import InvalidDurationError, SettingsError

DEFAULT_SQLITE_PATH: Final = Path("var") / "taskrunner.sqlite3"
DEFAULT_FLOWS_DIR: Final = Path(__file__).resolve().with_name("flows")
MAX_BODY_BYTES: Final = 1024 * 1024
MAX_KEY_FILE_BYTES: Final = 1024 * 1024
BODY_TIMEOUT_SECONDS: Final = 15.0
HEADER_TIMEOUT_SECONDS: Final = 10.0
KEEP_ALIVE_SECONDS: Final = 5.0

_TRUE: Final = {"1", "true", "yes", "on"}
_FALSE: Final = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Timeouts:
    """How long the database may keep taskrunner waiting, in seconds.

    A hung database (or one restarting) turns into `StoreUnavailableError` within these
    bounds, never a request that hangs: `connect` for a new connection (it covers the whole
    handshake), `statement` for one statement and `lock` for one lock wait (enforced by
    PostgreSQL; on SQLite `lock` is how long a writer waits for the file's lock), `pool`
    for a connection of the pool to come free.
    """

    connect: float = 5.0
    statement: float = 30.0
    lock: float = 5.0
    pool: float = 5.0


LogFormat = Literal["text", "json"]
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class LogSettings:
    """How a process logs (`logs.configure_logging`)."""

    format: LogFormat = "text"
    level: str | None = None
    """None: the process's own default."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LogSettings:
        env = os.environ if environ is None else environ
        chosen = env.get("TASKRUNNER_LOG_FORMAT", "").strip().lower() or "text"
        formats: tuple[LogFormat, ...] = get_args(LogFormat)
        if chosen not in formats:
            raise SettingsError(f"TASKRUNNER_LOG_FORMAT={chosen!r}: use text or json")
        level = env.get("TASKRUNNER_LOG_LEVEL", "").strip().upper() or None
        if level is not None and level not in LOG_LEVELS:
            raise SettingsError(
                f"TASKRUNNER_LOG_LEVEL={level!r}: use one of {', '.join(LOG_LEVELS)}"
            )
        return cls("json" if chosen == "json" else "text", level)


@dataclass(frozen=True)
class Settings:
    """Everything taskrunner reads from its environment."""

    database_url: str
    database_is_default: bool = False
    auto_migrate: bool = True
    flows_dir: Path = DEFAULT_FLOWS_DIR
    flows_reload_seconds: float = 2.0
    max_body_bytes: int = MAX_BODY_BYTES
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    worker_concurrency: int = 2
    sync_wait_seconds: float = 30.0
    request_timeout_seconds: float = 10.0
    timeouts: Timeouts = Timeouts()
    api_keys: ApiKeyring | None = None
    """None: no keys are configured, and the API is open (to loopback clients only)."""
    retention: timedelta | None = None
    """Finished tasks older than this are deleted in the background; None: kept."""
    retention_interval: float = 60.0
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS
    header_timeout_seconds: float = HEADER_TIMEOUT_SECONDS
    keep_alive_seconds: float = KEEP_ALIVE_SECONDS
    log: LogSettings = LogSettings()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        url = env.get("DATABASE_URL", "").strip()
        return cls(
            database_url=normalize_database_url(url) if url else default_database_url(),
            database_is_default=not url,
            auto_migrate=_flag(env, "TASKRUNNER_AUTO_MIGRATE", default=True),
            flows_dir=Path(env.get("TASKRUNNER_FLOWS_DIR") or DEFAULT_FLOWS_DIR),
            flows_reload_seconds=_seconds(
                env, "TASKRUNNER_FLOWS_RELOAD_SECONDS", default=2.0, zero_is_off=True
            ),
            lease_seconds=_seconds(env, "TASKRUNNER_LEASE_SECONDS", default=30.0),
            poll_seconds=_seconds(env, "TASKRUNNER_POLL_SECONDS", default=1.0),
            worker_concurrency=_count(env, "TASKRUNNER_WORKER_CONCURRENCY", default=2),
            sync_wait_seconds=_seconds(env, "TASKRUNNER_SYNC_WAIT_SECONDS", default=30.0),
            request_timeout_seconds=_seconds(
                env, "TASKRUNNER_REQUEST_TIMEOUT_SECONDS", default=10.0
            ),
            timeouts=Timeouts(
                connect=_seconds(env, "TASKRUNNER_DB_CONNECT_TIMEOUT_SECONDS", default=5.0),
                statement=_seconds(env, "TASKRUNNER_DB_STATEMENT_TIMEOUT_SECONDS", default=30.0),
                lock=_seconds(env, "TASKRUNNER_DB_LOCK_TIMEOUT_SECONDS", default=5.0),
                pool=_seconds(env, "TASKRUNNER_DB_POOL_TIMEOUT_SECONDS", default=5.0),
            ),
            api_keys=_api_keys(env),
            retention=_retention(env, "TASKRUNNER_RETENTION"),
            retention_interval=_seconds(env, "TASKRUNNER_RETENTION_INTERVAL", default=60.0),
            body_timeout_seconds=_seconds(
                env, "TASKRUNNER_BODY_TIMEOUT_SECONDS", default=BODY_TIMEOUT_SECONDS
            ),
            header_timeout_seconds=_seconds(
                env, "TASKRUNNER_HEADER_TIMEOUT_SECONDS", default=HEADER_TIMEOUT_SECONDS
            ),
            keep_alive_seconds=_seconds(
                env, "TASKRUNNER_KEEP_ALIVE_SECONDS", default=KEEP_ALIVE_SECONDS
            ),
            log=LogSettings.from_env(env),
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
    if "\x00" in unquote(url):
        raise SettingsError("DATABASE_URL holds a NUL character, which no path or name may hold")
    scheme, separator, rest = url.partition("://")
    if not separator:
        # Not echoed: what was meant as a URL may hold a password.
        raise SettingsError(
            "DATABASE_URL is not a URL: it needs a scheme, as in postgresql://host/db"
        )
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


def _seconds(
    env: Mapping[str, str], name: str, *, default: float, zero_is_off: bool = False
) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if zero_is_off and seconds == 0:
        return seconds
    if not 0.05 <= seconds <= 86_400:
        off = " (0 for off)" if zero_is_off else ""
        raise SettingsError(f"{name}={value!r}: use a number of seconds from 0.05 to 86400{off}")
    return seconds


def _retention(env: Mapping[str, str], name: str) -> timedelta | None:
    value = env.get(name, "").strip()
    if not value or value.lower() in _FALSE:
        return None
    try:
        return parse_duration(value)
    except InvalidDurationError as exc:
        raise SettingsError(f"{name}: {exc.message}, or off") from None


def _count(env: Mapping[str, str], name: str, *, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) > 256:
        raise SettingsError(f"{name}={value!r}: use a whole number from 0 to 256")
    return int(value)


def _api_keys(env: Mapping[str, str]) -> ApiKeyring | None:
    """The keys of `TASKRUNNER_API_KEYS_FILE` and `TASKRUNNER_API_KEYS`, together; None when
    neither is set. A variable that is set but lists no key is an error, not an open API."""
    entries: list[tuple[str, str]] = []
    path = env.get("TASKRUNNER_API_KEYS_FILE", "").strip()
    inline = env.get("TASKRUNNER_API_KEYS", "").strip()
    if not path and not inline:
        return None
    if path:
        lines = _read_key_file(Path(path)).splitlines()
        file_entries = [(f"{path}:{number}", line) for number, line in enumerate(lines, 1)]
        _require_some(file_entries, f"TASKRUNNER_API_KEYS_FILE={path}")
        entries += file_entries
    if inline:
        parts = inline.replace("\n", ";").replace("\r", "").split(";")
        inline_entries = [
            (f"TASKRUNNER_API_KEYS entry {number}", part) for number, part in enumerate(parts, 1)
        ]
        _require_some(inline_entries, "TASKRUNNER_API_KEYS")
        entries += inline_entries
    return ApiKeyring(parse_keys(entries))


def _read_key_file(path: Path) -> str:
    where = f"TASKRUNNER_API_KEYS_FILE={path}"
    try:
        if not path.is_file():  # checked first: opening a FIFO would block
            raise SettingsError(f"{where}: not a regular file (or it does not exist)")
        with path.open("rb") as handle:
            raw = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise SettingsError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise SettingsError(f"{where}: larger than {MAX_KEY_FILE_BYTES:,} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SettingsError(f"{path}:{line}: not UTF-8 text") from None


def _require_some(entries: list[tuple[str, str]], where: str) -> None:
    if not any(text.strip() and not text.strip().startswith("#") for _, text in entries):
        raise SettingsError(
            f"{where} lists no API key; add one (`taskrunner api-key new`) or unset it "
            "to serve without keys"
        )
