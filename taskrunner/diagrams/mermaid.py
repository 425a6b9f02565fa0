"""A diagram as a Mermaid flowchart (`flowchart TD`), which GitHub renders in Markdown.

Every label is a quoted string in which the characters Mermaid reads as syntax, or as
HTML, are written as its entity codes (`#35;` for `#`), so that any name or literal
gives a valid chart. A task's path is drawn with classes (`taken`, `failedHere`) and
`linkStyle` on the arrows taken; the labels say the same in words.
"""

from __future__ import annotations

from typing import Final

from taskrunner.diagrams.chart import Arrow, Box, Diagram

SHAPES: Final = {
    "start": ("((", "))"),
    "task": ("[", "]"),
    "choice": ("{", "}"),
    "pass": ("[/", "/]"),
    "wait": ("{{", "}}"),
    "parallel": ("[/", "\\]"),
    "map": ("[\\", "/]"),
    "flow": ("[[", "]]"),
    "succeed": ("([", "])"),
    "fail": ("(((", ")))"),
}
"""The shape of each kind: a rectangle for a task, a rhombus for a choice, a stadium for
succeed, a double circle for fail; a rectangle for a kind not listed."""
ARROWS: Final = {"next": "-->", "fanout": "-->", "catch": "-.->", "retry": "-.->"}
ESCAPED: Final = frozenset('"#<>|&`\\;')
CLASSES: Final = {
    "failState": "fill:#ffebe9,stroke:#cf222e,color:#82071e",
    "taken": "stroke:#0969da,stroke-width:3px",
    "failedHere": "stroke:#cf222e,stroke-width:4px",
}
TAKEN_ARROW: Final = "stroke:#0969da,stroke-width:3px"


def write(diagram: Diagram) -> str:
    lines = ["flowchart TD"]
    _write_boxes(diagram, None, lines, "  ")
    lines.extend(f"  {_arrow(arrow)}" for arrow in diagram.arrows)
    classes: dict[str, list[str]] = {name: [] for name in CLASSES}
    for box in diagram.boxes:
        if box.kind == "fail":
            classes["failState"].append(box.id)
        if box.mark == "taken":
            classes["taken"].append(box.id)
        elif box.mark == "failed":
            classes["failedHere"].append(box.id)
    for name, members in classes.items():
        if members:
            lines.append(f"  classDef {name} {CLASSES[name]}")
            lines.append(f"  class {','.join(members)} {name}")
    taken = [str(index) for index, arrow in enumerate(diagram.arrows) if arrow.taken]
    if taken:
        lines.append(f"  linkStyle {','.join(taken)} {TAKEN_ARROW}")
    return "\n".join(lines) + "\n"


def _write_boxes(diagram: Diagram, cluster: str | None, lines: list[str], indent: str) -> None:
    lines.extend(indent + _box(box) for box in diagram.boxes_in(cluster))
    for inner in diagram.clusters_in(cluster):
        lines.append(f'{indent}subgraph {inner.id}["{text(inner.title)}"]')
        _write_boxes(diagram, inner.id, lines, indent + "  ")
        lines.append(f"{indent}end")


def _box(box: Box) -> str:
    opening, closing = SHAPES.get(box.kind, SHAPES["task"])
    label = "<br/>".join(text(line) for line in box.lines)
    return f'{box.id}{opening}"{label}"{closing}'


def _arrow(arrow: Arrow) -> str:
    link = ARROWS[arrow.style]
    label = f'|"{text(arrow.label)}"|' if arrow.label else ""
    return f"{arrow.source} {link}{label} {arrow.target}"


def text(value: str) -> str:
    """`value` as it may stand in a quoted Mermaid label: syntax characters as entity
    codes, and no line break."""
    flat = " ".join(value.splitlines())
    return "".join(f"#{ord(char)};" if char in ESCAPED else char for char in flat)
