"""The one exception root of taskrunner, and every error it raises on purpose.

Each class says once what it means to the outside: `problem`, the last part of its
`urn:taskrunner:problem:` type in the API; `http_status`; `exit_status` for the command
line. The API (`api/problems.py`) and the CLI (`cli/__init__.py`) read these and keep no
table of their own. The class docstring is the default message; subclasses add structured
fields rather than formatting them into strings only.

A fault on taskrunner's side (a 5xx) is never blamed on the client: its details are
logged, and the client is told only what it can act on.
"""

from __future__ import annotations

import inspect
import uuid
from typing import ClassVar, Final

EXIT_FAILED: Final = 1
"""A failed task, an invalid flow, an unknown task, a database that cannot be reached."""
EXIT_USAGE: Final = 2
"""A usage error: bad options, a refused input, a path that cannot be read."""
EXIT_UNFINISHED: Final = 75
"""The task has not finished yet (EX_TEMPFAIL): it goes on elsewhere; ask again later."""
EXIT_INTERRUPTED: Final = 130
"""Interrupted (Ctrl-C)."""
EXIT_INTERNAL: Final = 70
"""A fault of taskrunner's (EX_SOFTWARE)."""
MAX_LISTED_PROBLEMS: Final = 20
"""How many of an input's problems an error lists; it counts the rest."""
MAX_PROBLEM_CHARS: Final = 500
"""How long one listed problem may be: it can quote a key of the client's, of any length."""


def clipped(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with an ellipsis when it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TaskrunnerError(Exception):
    """Taskrunner failed."""

    problem: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    exit_status: ClassVar[int] = EXIT_INTERNAL
    retry_after: ClassVar[int | None] = None
    """Seconds after which a client may try again (with a 503)."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message()
        super().__init__(self.message)

    @classmethod
    def default_message(cls) -> str:
        """What the class says it means: the first paragraph of its docstring."""
        return _first_paragraph(cls.__doc__)

    @property
    def details(self) -> list[str] | None:
        """Each problem, when there are several (the API's `errors`)."""
        return None

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer must carry (such as `WWW-Authenticate`)."""
        return {}


def _first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, as one clean sentence."""
    cleaned = inspect.cleandoc(doc or "")
    return " ".join(cleaned.split("\n\n", 1)[0].split())


# -- the client's request -------------------------------------------------------------------


class ClientError(TaskrunnerError):
    """The client's request is at fault: a 4xx, and a usage error for the command line."""

    problem = "invalid-request"
    http_status = 422
    exit_status = EXIT_USAGE


class InvalidRequestError(ClientError):
    """The request cannot be served as asked."""


class MalformedBodyError(ClientError):
    """The request body is not well-formed JSON."""

    problem = "malformed-body"
    http_status = 400


class BodyTooLargeError(ClientError):
    """The request body is larger than the limit."""

    problem = "too-large"
    http_status = 413


class BodyTimeoutError(ClientError):
    """The client took too long to send the request body."""

    problem = "body-timeout"
    http_status = 408


class ClientGoneError(ClientError):
    """The client closed the connection before it had sent the whole request body."""

    problem = "client-disconnected"
    http_status = 400


class JsonTextError(ClientError):
    """The text is not JSON that taskrunner accepts."""

    problem = "malformed-body"
    http_status = 400


class FlowInputError(ClientError):
    """The input does not match what the flow declares."""

    problem = "invalid-input"

    def __init__(self, problems: list[str]) -> None:
        # A body of a megabyte can hold a hundred thousand unknown keys: the answer lists
        # a few, so that it stays small, and says how many more there were.
        listed = [clipped(item, MAX_PROBLEM_CHARS) for item in problems[:MAX_LISTED_PROBLEMS]]
        if len(problems) > MAX_LISTED_PROBLEMS:
            listed.append(f"... and {len(problems) - MAX_LISTED_PROBLEMS:,} more problem(s)")
        self.problems = listed
        super().__init__("; ".join(listed))

    @property
    def details(self) -> list[str]:
        return self.problems


class UnstorableDataError(ClientError):
    """The data holds text that the database cannot store."""

    problem = "unstorable-text"

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(
            f"the input at {where} holds text the database cannot store "
            "(the NUL character, or an unpaired UTF-16 surrogate)"
        )


class UnknownFlowError(ClientError):
    """No flow has this name."""

    problem = "unknown-flow"
    http_status = 404

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        shown = name if len(name) <= 80 else name[:77] + "..."
        super().__init__(f"no flow named {shown!r}; flows: {', '.join(known) or 'none'}")


class InvalidFlowFileError(ClientError):
    """The flow's file is invalid, so the flow is not loaded."""

    problem = "invalid-flow-file"
    http_status = 404
    exit_status = EXIT_FAILED

    def __init__(self, name: str, file: str, reason: str) -> None:
        self.name = name
        self.file = file
        self.reason = reason
        super().__init__(
            f"the flow {name!r} is not loaded: its file {file} in the flows directory "
            f"{reason}; `taskrunner validate-flow` on that file (or GET /flows) shows why"
        )


class TaskNotFoundError(ClientError):
    """No task has this id."""

    problem = "unknown-task"
    http_status = 404
    exit_status = EXIT_FAILED

    def __init__(self, task_id: object) -> None:
        self.task_id = task_id
        super().__init__(f"no task with id {task_id}")


class IdempotencyConflictError(ClientError):
    """This idempotency key already started a task with a different flow or input."""

    problem = "idempotency-conflict"
    http_status = 409
    exit_status = EXIT_FAILED


class TaskFinishedError(ClientError):
    """The task has already finished."""

    problem = "task-finished"
    http_status = 409
    exit_status = EXIT_FAILED


class UnauthenticatedError(ClientError):
    """This needs an API key: send `Authorization: Bearer <key>`."""

    problem = "unauthenticated"
    http_status = 401

    challenge: ClassVar[str] = 'Bearer realm="taskrunner"'
    """The `WWW-Authenticate` challenge (RFC 6750)."""

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge}


class InvalidApiKeyError(UnauthenticatedError):
    """The API key is not valid."""

    problem = "invalid-api-key"
    challenge = 'Bearer realm="taskrunner", error="invalid_token"'


class RevokedApiKeyError(UnauthenticatedError):
    """The API key has been revoked."""

    problem = "revoked-api-key"
    challenge = (
        'Bearer realm="taskrunner", error="invalid_token", '
        'error_description="the API key has been revoked"'
    )

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"the API key {name!r} has been revoked")


class InsufficientScopeError(ClientError):
    """The API key's scope does not allow this."""

    problem = "insufficient-scope"
    http_status = 403

    def __init__(self, name: str, held: str, needed: str) -> None:
        self.name = name
        self.held = held
        self.needed = needed
        super().__init__(
            f"the API key {name!r} has the scope {held!r}; this needs {needed!r} or above"
        )

    @property
    def headers(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": f'Bearer realm="taskrunner", error="insufficient_scope", '
            f'scope="{self.needed}"'
        }


class ForeignFormError(ClientError):
    """This form was not sent from the console itself, so it was refused."""

    problem = "foreign-form"
    http_status = 403


class InvalidDurationError(ClientError):
    """Not a duration: use a whole number and a unit, such as 90m, 12h or 30d."""

    problem = "invalid-duration"


class RetentionStatusError(ClientError):
    """Retention deletes finished tasks only: succeeded, failed or cancelled ones, never
    pending or running ones."""

    problem = "invalid-retention-status"


class InputOptionError(ClientError):
    """The command line does not give a usable input."""


class UnreadableFlowFileError(ClientError):
    """The path is not a readable regular file."""

    problem = "unreadable-file"


# -- configuration and start-up ------------------------------------------------------------


class SettingsError(TaskrunnerError):
    """The configuration is not valid."""

    problem = "invalid-settings"
    exit_status = EXIT_USAGE


class UnprotectedServerError(SettingsError):
    """The API would listen beyond this machine with no API key configured."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"--host {host} is not a loopback address and no API keys are configured: "
            "set TASKRUNNER_API_KEYS_FILE (see `taskrunner api-key new`), "
            "or pass --insecure to serve without authentication"
        )


class ListenAddressError(ClientError):
    """The address to listen on is not one a server can have."""


class ListenError(TaskrunnerError):
    """The server cannot listen on its address: in use, not this machine's, or not allowed."""

    problem = "cannot-listen"
    exit_status = EXIT_FAILED


class MigrationError(TaskrunnerError):
    """The database could not be migrated."""

    problem = "migration-failed"
    exit_status = EXIT_FAILED


# -- flows and tools ------------------------------------------------------------------------


class FlowCatalogError(ClientError):
    """The flows directory cannot be loaded."""

    problem = "invalid-flows"
    exit_status = EXIT_FAILED
    # At start-up this stops the process; asked for a reload (`POST /flows/reload`), the
    # flows loaded before are kept, and the server's state is what the caller (an admin)
    # must fix: a conflict with the state of the server, not a fault of it.
    http_status = 409

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        super().__init__("\n".join([message, *self.problems]))

    @property
    def details(self) -> list[str]:
        return self.problems


class ToolRegistryError(TaskrunnerError):
    """A tool could not be registered."""

    problem = "tool-registry"
    exit_status = EXIT_FAILED


class UnknownToolError(ToolRegistryError):
    """No tool is registered under this name."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"no tool named {name!r}; known tools: {', '.join(known) or 'none'}")


class UnexpectedStepError(TaskrunnerError):
    """A recorded step is not the step the interpreter expects at this point of the flow."""

    problem = "unexpected-step"


# -- the store ------------------------------------------------------------------------------


class StoreError(TaskrunnerError):
    """The database failed."""

    problem = "store-failed"
    exit_status = EXIT_FAILED


class NoDatabaseError(StoreError):
    """There is no database at this path."""

    problem = "no-database"


class StoreUnavailableError(StoreError):
    """The database cannot be reached; try again shortly."""

    problem = "store-unavailable"
    http_status = 503
    retry_after = 1
    task_id: uuid.UUID | None = None
    """The task the request started, when it may have been stored before the fault: the
    answer says where it is (`Location`), so that the client can find out."""


class StoreTimeoutError(StoreUnavailableError):
    """The database did not answer in time; try again shortly."""

    problem = "store-timeout"


class LeaseLostError(StoreError):
    """This runner no longer holds the task: its lease ran out and another took it, or it
    was cancelled. Nothing was written."""

    problem = "lease-lost"
    http_status = 503
    retry_after = 1
