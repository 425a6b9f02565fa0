"""How the CLI shows tasks to people (`--json` shows them to programs instead)."""

from __future__ import annotations

import json

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
    for step in task.steps:
        if step.tool == CHOICE_TOOL:
            lines.append(_choice_line(step))
            continue
        took = (step.finished_at - step.started_at).total_seconds() * 1000
        result = (
            _json(step.output) if step.error is None else f"{step.error.kind}: {step.error.message}"
        )
        lines.append(
            f"    {step.seq:>3}  {step.state} ({step.tool}, attempt {step.attempt})  "
            f"{step.status}  {_json(step.input)} -> {result}  [{took:.1f} ms]"
        )
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


def page_text(page: TaskPage) -> str:
    if not page.items:
        return "no tasks"
    lines = [
        f"{item.id}  {item.status:<9}  {item.flow:<16}  {item.created_at:%Y-%m-%d %H:%M:%S}"
        for item in page.items
    ]
    if page.next_cursor:
        lines.append(f"more: --cursor {page.next_cursor}")
    return "\n".join(lines)


def _json(value: JsonValue) -> str:
    return json.dumps(value, ensure_ascii=False)
