"""The diagrams of `docs/flow-language.md` cannot drift: each shipped flow, quoted whole,
is followed by its Mermaid diagram exactly as `draw` makes it, and every other Mermaid
block of the guide is one of the golden diagrams (which `test_diagram_goldens.py` checks
against the renderer)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from taskrunner.diagrams import draw
from taskrunner.engine.validate import FlowChecker
from taskrunner.linking import Source, link
from taskrunner.tools import load_registry

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "flow-language.md").read_text()
GOLDEN = ROOT / "tests" / "golden" / "diagrams"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)
FLOW_FILES = sorted((ROOT / "taskrunner" / "flows").glob("*.yaml"))


def test_each_shipped_flow_in_the_guide_is_followed_by_its_own_diagram() -> None:
    checker = FlowChecker(load_registry())
    linkage = link([Source(path.name, path.read_bytes()) for path in FLOW_FILES], checker)
    flows = {linked.source.file: linked.flow for linked in linkage.linked}
    blocks = BLOCK.findall(GUIDE)
    followed = {}
    for (language, body), (next_language, next_body) in itertools.pairwise(blocks):
        for path in FLOW_FILES:
            if language == "yaml" and body == path.read_text():
                followed[path.name] = (next_language, next_body)
    assert sorted(followed) == [path.name for path in FLOW_FILES]
    for file, (language, body) in followed.items():
        flow = flows[file]
        assert flow is not None
        assert (language, body) == ("mermaid", draw(flow)), file


def test_every_mermaid_block_of_the_guide_is_a_golden_diagram() -> None:
    goldens = {path.read_text(encoding="utf-8") for path in GOLDEN.glob("*.mmd")}
    diagrams = [body for language, body in BLOCK.findall(GUIDE) if language == "mermaid"]
    assert len(diagrams) == len(FLOW_FILES) + 1  # each flow's, and one task's path
    assert all(body in goldens for body in diagrams)
