"""How the CLI shows tasks to people (`--json` shows them to programs instead)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import JsonValue

from taskrunner.engine.states.choice import CHOICE_TOOL
from taskrunner.views import StepView, TaskPage, TaskView


def task_text(task: TaskView) -> str:
    lines = [
        f"task {task.id}  {task.status}",
        f"  flow      {task.flow} ({task.flow_version[:19]}…)",
        f"  state     {task.current_state}",
        f"  input     {_json(task.input)}",
    ]
    if task.output is not None:
        lines.append(f"  output    {_json(task.output)}")
    if task.error is not None:
        lines.append(f"  error     {task.error.kind}: {task.error.message}")
    shown = f" (the first {len(task.steps)})" if task.steps_next_after is not None else ""
    lines.append(f"  steps     {task.steps_total}{shown}")
    lines.extend(step_line(step) for step in task.steps)
    if task.steps_next_after is not None:
        lines.append(f"  more: taskrunner get-task {task.id} --all-steps")
    return "\n".join(lines)


def _choice_line(step: StepView) -> str:
    """A choice's decision: `rule 2 matched -> big`, or `default -> small`, then what its
    conditions read."""
    decision = step.output or {}
    rule, target = decision.get("rule"), decision.get("next")
    chosen = f"rule {rule} matched" if isinstance(rule, int) else str(rule)
    return f"    {step.seq:>3}  {step.state} (choice)  {chosen} -> {target}  {_json(step.input)}"


def step_line(step: StepView) -> str:
    """One step on one line: `get-task` lists them, `--follow` prints them as they land."""
    if step.tool == CHOICE_TOOL:
        return _choice_line(step)
    took = (step.finished_at - step.started_at).total_seconds() * 1000
    result = (
        _json(step.output) if step.error is None else f"{step.error.kind}: {step.error.message}"
    )
    return (
        f"    {step.seq:>3}  {step.state} ({step.tool}, attempt {step.attempt})  "
        f"{step.status}  {_json(step.input)} -> {result}  [{took:.1f} ms]"
    )


def page_text(page: TaskPage) -> str:
    """A table under a header row. Times are ISO 8601 with their zone, so that they read
    the same wherever they are read; a task that did not fail shows `-` for its error."""
    if not page.items:
        return "no tasks"
    rows = [("ID", "STATUS", "FLOW", "CREATED", "ERROR")]
    rows.extend(
        (
            str(item.id),
            item.status,
            item.flow,
            item.created_at.isoformat(timespec="milliseconds"),
            item.error.kind if item.error is not None else "-",
        )
        for item in page.items
    )
    lines = [table(rows)]
    if page.next_cursor:
        lines.append(f"more: --cursor {page.next_cursor}")
    return "\n".join(lines)


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows in columns as wide as their widest cell, the first row a header; the last
    column is left ragged."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*map(str.ljust, row[:-1], widths), row[-1]]).rstrip() for row in rows
    )


def _json(value: JsonValue) -> str:
    return json.dumps(value, ensure_ascii=False)
