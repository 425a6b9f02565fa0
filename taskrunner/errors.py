"""The one exception root of taskrunner.

Every error that taskrunner raises on purpose derives from `TaskrunnerError`. The class
docstring is the default message; subclasses add structured fields rather than formatting
them into strings, so that the CLI and the API can render them as they see fit.
"""

from __future__ import annotations


class TaskrunnerError(Exception):
    """Taskrunner failed."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (type(self).__doc__ or "").strip()
        super().__init__(self.message)


class ToolRegistryError(TaskrunnerError):
    """A tool could not be registered."""


class UnknownToolError(TaskrunnerError):
    """No tool is registered under this name."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"no tool named {name!r}; known tools: {', '.join(known) or 'none'}")


class FlowInputError(TaskrunnerError):
    """The input does not match what the flow declares."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class UnexpectedStepError(TaskrunnerError):
    """A recorded step is not the step the interpreter expects at this point of the flow."""


class TaskNotFoundError(TaskrunnerError):
    """No task has this id."""

    def __init__(self, task_id: object) -> None:
        self.task_id = task_id
        super().__init__(f"no task with id {task_id}")


class InvalidRequestError(TaskrunnerError):
    """The request cannot be served as asked."""


class UnstorableDataError(TaskrunnerError):
    """The data holds text that the database cannot store."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(
            f"the input at {where} holds text the database cannot store "
            "(the NUL character, or an unpaired UTF-16 surrogate)"
        )
