"""The flows' endpoints: the flows, one flow, the schema of flow documents, a flow
document checked, and the reload of the flows directory.

`GET /flows` lists each loaded flow as it always has (`name`, `description`, `version`),
now with `valid: true` and its `file`; after them, one entry per flow file that was
skipped, with `valid: false`, the `file`, why (`error`), and its `problems` as
`taskrunner validate-flow --json` gives them. `POST /flows/reload` reads the flows
directory again at once and answers the same list.
"""

from __future__ import annotations

import json
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, JsonValue

from taskrunner.api.auth import require
from taskrunner.api.routes import READ, offload_of, problem_responses, runtime_of
from taskrunner.catalog import FlowCatalog
from taskrunner.diagrams import DiagramFormat, draw
from taskrunner.flowfile import check_source

router = APIRouter()


EXAMPLE_PROBLEM: Final[dict[str, JsonValue]] = {
    "file": "flow.yaml",
    "line": 11,
    "column": 11,
    "code": "flow.unknown-state",
    "path": "/states/echo/next",
    "message": "transition to `ad`, which is not a state",
    "hint": "did you mean `add`?",
    "severity": "error",
}
"""A problem as `validate-flow --json` prints it, for the examples of the document."""
EXAMPLE_WARNING: Final[dict[str, JsonValue]] = {
    "file": "flow.yaml",
    "line": 14,
    "column": 19,
    "code": "error.unknown-kind",
    "path": "/states/divide/catch/0/errors/0",
    "message": "the tool `divide` never raises `DivisionByZer`",
    "hint": "did you mean `DivisionByZero`?",
    "severity": "warning",
}


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
        examples=[[{**EXAMPLE_PROBLEM, "file": "broken.yaml"}]],
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


class FlowDetail(FlowSummary):
    input_schema: dict[str, JsonValue] = Field(description="The JSON Schema of a task's input.")
    definition: dict[str, JsonValue] = Field(description="The definition, as canonical JSON.")


@router.get(
    "/flows",
    response_model=FlowListing,
    tags=["flows"],
    summary="The flows, and the flow files skipped",
    dependencies=READ,
)
async def list_flows(request: Request) -> FlowListing:
    """Each loaded flow (`valid: true`), by name; then each flow file that was skipped
    (`valid: false`: invalid, unreadable, or defining a flow that an earlier file
    defines), with its problems."""
    return flow_listing(runtime_of(request).catalog)


@router.get(
    "/flows/{name}",
    response_model=FlowDetail,
    tags=["flows"],
    summary="A flow: its definition and the schema of its input",
    dependencies=READ,
    responses={
        404: {
            "description": "No such flow (`unknown-flow`), or its file was skipped "
            "(`invalid-flow-file`: `GET /flows` shows its problems)."
        }
    },
)
async def get_flow(request: Request, name: str) -> FlowDetail:
    entry = runtime_of(request).catalog.get(name)
    flow = entry.flow
    return FlowDetail(
        name=flow.name,
        description=flow.description,
        version=flow.digest,
        file=entry.path.name,
        input_schema=entry.plan.input_model.model_json_schema(),
        definition=json.loads(flow.canonical),
    )


@router.get(
    "/schema/flow.json",
    tags=["flows"],
    summary="The JSON Schema of flow documents",
    dependencies=READ,
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "title": "taskrunner flow",
                        "type": "object",
                    }
                }
            }
        }
    },
)
async def flow_schema(request: Request) -> dict[str, JsonValue]:
    return runtime_of(request).catalog.checker.schema


class ValidationReport(BaseModel):
    valid: bool = Field(description="True when the flow has no error (warnings allowed).")
    omitted: int = Field(
        default=0,
        description="How many problems were left out: `problems` and `warnings` list the "
        "first 100 together.",
    )
    problems: list[dict[str, JsonValue]] = Field(
        description="The errors, as `taskrunner validate-flow --json` prints them.",
        examples=[[EXAMPLE_PROBLEM]],
    )
    warnings: list[dict[str, JsonValue]] = Field(
        default_factory=list,
        description="What is allowed but probably not meant (`severity: warning`), in the "
        "same form; they do not make the flow invalid.",
        examples=[[EXAMPLE_WARNING]],
    )
    diagram: str | None = Field(
        default=None,
        description="The flow's state chart when it is valid, in the `format` asked for "
        "(Mermaid by default, as `GET /flows/{name}/graph` draws it); null when invalid.",
    )


@router.post(
    "/flows/validate",
    response_model=ValidationReport,
    tags=["flows"],
    summary="Check a flow document (YAML) and list every problem",
    # `read`, not open: checking costs CPU, and strangers should not be able to spend it.
    dependencies=READ,
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/yaml": {
                    "schema": {"type": "string"},
                    "example": "name: broken\nstart: echo\nstates:\n  echo:\n"
                    "    type: task\n    tool: echo\n    args: {text: hi}\n    next: ad\n",
                }
            },
        }
    },
    responses=problem_responses(408, 413),
)
async def validate_flow(
    request: Request,
    file: Annotated[
        str, Query(max_length=256, description="The file name to show in the problems.")
    ] = "flow.yaml",
    format: Annotated[
        DiagramFormat, Query(description="The format of `diagram`: `mermaid` or `dot`.")
    ] = "mermaid",
) -> ValidationReport:
    raw = await request.body()
    checker = runtime_of(request).catalog.checker
    report = await offload_of(request).check(check_source, raw, file, checker)
    flow = report.flow
    return ValidationReport(
        valid=flow is not None,
        problems=[item.as_json() for item in report.errors],
        warnings=[item.as_json() for item in report.warnings],
        omitted=report.omitted,
        diagram=None if flow is None else await offload_of(request).check(draw, flow, format),
    )


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
    return flow_listing(runtime_of(request).flows.reload())
