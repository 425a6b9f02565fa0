"""The diagrams' endpoints: a flow's state chart, and a task's path through its flow, as
Mermaid text or Graphviz DOT (`?format=`). Thin: `taskrunner.graphs` draws them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response

from taskrunner.api.routes import READ, offload_of, problem_responses, runtime_of
from taskrunner.diagrams import DiagramFormat
from taskrunner.graphs import flow_graph, task_graph

router = APIRouter()

MEDIA_TYPES: Final[dict[DiagramFormat, str]] = {
    "mermaid": "text/plain; charset=utf-8",
    "dot": "text/vnd.graphviz; charset=utf-8",
}
FormatQuery = Annotated[
    DiagramFormat,
    Query(description="`mermaid` (a `flowchart TD`, as GitHub renders it) or `dot` (Graphviz)."),
]
_EXAMPLE: Final = 'flowchart TD\n  s_start(("start"))\n  s_0["echo<br/>task: echo"]\n'
_TEXT: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "content": {
            "text/plain": {"schema": {"type": "string"}, "example": _EXAMPLE},
            "text/vnd.graphviz": {"schema": {"type": "string"}},
        }
    },
}


@router.get(
    "/flows/{name}/graph",
    tags=["flows"],
    summary="A flow's state chart, as Mermaid or DOT",
    dependencies=READ,
    response_class=Response,
    responses={**_TEXT, **problem_responses(404, 422)},
)
async def get_flow_graph(request: Request, name: str, format: FormatQuery = "mermaid") -> Response:
    """Each state in a shape of its kind, each choice rule's condition on its edge, retries
    as dashed self-loops and catches as dashed edges labelled with the error kinds."""
    text = flow_graph(runtime_of(request).service, name, format)
    return Response(text, media_type=MEDIA_TYPES[format])


@router.get(
    "/tasks/{task_id}/graph",
    tags=["tasks"],
    summary="A task's path through its flow, as Mermaid or DOT",
    dependencies=READ,
    response_class=Response,
    responses={**_TEXT, **problem_responses(404, 422, 503)},
)
async def get_task_graph(
    request: Request, task_id: uuid.UUID, format: FormatQuery = "mermaid"
) -> Response:
    """The chart of the flow version the task is pinned to, its path highlighted: each
    state it went through says how many steps it recorded there and how they went, in
    words, and the state it failed in says `failed`."""
    service = runtime_of(request).service
    text = await offload_of(request).call(task_graph, service, task_id, format)
    return Response(text, media_type=MEDIA_TYPES[format])
