"""The flows as the API lists them, skipped files included, and their reload.

`GET /flows` lists each loaded flow as it always has (`name`, `description`, `version`),
now with `valid: true` and its `file`; after them, one entry per flow file that was
skipped, with `valid: false`, the `file`, why (`error`), and its `problems` as
`taskrunner validate-flow --json` gives them. `POST /flows/reload` reads the flows
directory again at once and answers the same list.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, JsonValue

from taskrunner.api.auth import require
from taskrunner.catalog import FlowCatalog
from taskrunner.runtime import Runtime

router = APIRouter()


class FlowSummary(BaseModel):
    """A flow that is loaded: tasks can be started from it."""

    valid: Literal[True] = True
    name: str = Field(examples=["echo_add"])
    description: str | None = Field(examples=["Echo a text, then add two numbers."])
    version: str = Field(description="The content digest of the definition.")
    file: str = Field(examples=["echo_add.yaml"], description="Its file in the flows directory.")


class SkippedFlowFile(BaseModel):
    """A flow file that is not loaded: no task can be started from it until it is fixed
    (tasks it started before keep running on their version)."""

    valid: Literal[False] = False
    file: str = Field(examples=["broken.yaml"], description="Its name in the flows directory.")
    name: str | None = Field(
        description="The flow name it declares, when it can be read that far.",
        examples=["broken"],
    )
    error: str = Field(
        description="Why it is skipped.",
        examples=["has 2 problems", "cannot be read: Permission denied"],
    )
    problems: list[dict[str, JsonValue]] = Field(
        description="As `taskrunner validate-flow --json` prints them; empty when the "
        "file cannot be read, or defines a flow that an earlier file (by name) defines.",
        examples=[
            [
                {
                    "file": "broken.yaml",
                    "line": 11,
                    "column": 11,
                    "code": "flow.unknown-state",
                    "path": "/states/echo/next",
                    "message": "transition to `ad`, which is not a state",
                    "hint": "did you mean `add`?",
                }
            ]
        ],
    )


FlowListing = list[FlowSummary | SkippedFlowFile]


def flow_listing(catalog: FlowCatalog) -> FlowListing:
    """The loaded flows by name, then the skipped files by file name."""
    listing: FlowListing = [
        FlowSummary(
            name=entry.flow.name,
            description=entry.flow.description,
            version=entry.flow.digest,
            file=entry.path.name,
        )
        for entry in catalog
    ]
    listing.extend(
        SkippedFlowFile(
            file=skipped.path.name,
            name=skipped.name,
            error=skipped.reason,
            problems=[problem.as_json() for problem in skipped.problems],
        )
        for skipped in catalog.skipped
    )
    return listing


@router.post(
    "/flows/reload",
    response_model=FlowListing,
    tags=["flows"],
    summary="Read the flows directory again, now",
    dependencies=[require("admin")],
    responses={
        409: {
            "description": "The flows directory cannot be listed (it was removed?): the "
            "flows loaded before are kept."
        }
    },
)
def reload_flows(request: Request) -> FlowListing:
    """Read every flow file again and start new tasks from what it holds now; answer the
    flows as `GET /flows` lists them. Tasks already started keep the flow version they
    started with, even if their flow changed or is gone. (The server also reloads by
    itself when a file changes, every `TASKRUNNER_FLOWS_RELOAD_SECONDS`, and on
    `SIGHUP`.) It needs the `admin` scope when API keys are configured."""
    runtime: Runtime = request.app.state.runtime
    return flow_listing(runtime.flows.reload())
