"""A diagram in Graphviz's DOT language (`digraph`), for `dot -Tsvg` and its kin.

Ids are the diagram's own (`s_0`, clusters `cluster_0`); every label is a quoted string,
in which only `"` and `\\` need escaping. A task's path is drawn with a thicker, coloured
outline and thicker arrows; the labels say the same in words.
"""

from __future__ import annotations

from typing import Final

from taskrunner.diagrams.chart import Arrow, Box, Diagram

SHAPES: Final[dict[str, dict[str, str]]] = {
    "start": {"shape": "circle", "style": "filled", "fillcolor": "#24292f", "fontcolor": "white"},
    "task": {"shape": "box"},
    "choice": {"shape": "diamond"},
    "pass": {"shape": "parallelogram"},
    "wait": {"shape": "hexagon"},
    "parallel": {"shape": "trapezium"},
    "map": {"shape": "invtrapezium"},
    "flow": {"shape": "box", "peripheries": "2"},
    "succeed": {"shape": "box", "style": "rounded"},
    "fail": {
        "shape": "doubleoctagon",
        "style": "filled",
        "fillcolor": "#ffebe9",
        "color": "#cf222e",
    },
}
"""The shape of each kind, as Graphviz names them; a box for a kind not listed."""
ARROWS: Final[dict[str, dict[str, str]]] = {
    "next": {},
    "fanout": {"style": "dotted"},
    "catch": {"style": "dashed"},
    "retry": {"style": "dashed"},
}
MARKS: Final[dict[str, dict[str, str]]] = {
    "plain": {},
    "taken": {"color": "#0969da", "penwidth": "3"},
    "failed": {"color": "#cf222e", "penwidth": "4"},
}
TAKEN_ARROW: Final = {"color": "#0969da", "penwidth": "3"}


def write(diagram: Diagram) -> str:
    lines = [
        f"digraph {quoted(diagram.title)} {{",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    _write_boxes(diagram, None, lines, "  ")
    lines.extend(f"  {_arrow(arrow)}" for arrow in diagram.arrows)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _write_boxes(diagram: Diagram, cluster: str | None, lines: list[str], indent: str) -> None:
    lines.extend(indent + _box(box) for box in diagram.boxes_in(cluster))
    for inner in diagram.clusters_in(cluster):
        lines.append(f"{indent}subgraph cluster_{inner.id.removeprefix('c_')} {{")
        lines.append(f"{indent}  label={quoted(inner.title)};")
        _write_boxes(diagram, inner.id, lines, indent + "  ")
        lines.append(f"{indent}}}")


def _box(box: Box) -> str:
    label = "\\n".join(_escaped(line) for line in box.lines)
    attributes = {**SHAPES.get(box.kind, SHAPES["task"]), **MARKS[box.mark]}
    return f'{box.id} [label="{label}"{_attributes(attributes)}];'


def _arrow(arrow: Arrow) -> str:
    attributes = dict(ARROWS[arrow.style])
    if arrow.taken:
        attributes.update(TAKEN_ARROW)
    label = f"label={quoted(arrow.label)}" if arrow.label else ""
    listed = (label + _attributes(attributes)).removeprefix(", ")
    return f"{arrow.source} -> {arrow.target}" + (f" [{listed}]" if listed else "") + ";"


def _attributes(attributes: dict[str, str]) -> str:
    return "".join(f", {key}={quoted(value)}" for key, value in attributes.items())


def quoted(value: str) -> str:
    """`value` as a DOT quoted string, on one line."""
    return f'"{_escaped(value)}"'


def _escaped(value: str) -> str:
    flat = " ".join(value.splitlines())
    return flat.replace("\\", "\\\\").replace('"', '\\"')
