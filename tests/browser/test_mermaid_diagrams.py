"""Every Mermaid diagram that taskrunner ships or draws renders with the vendored
Mermaid, in the browser, offline: the golden diagrams (`tests/golden/diagrams/*.mmd`)
and a few of this folder's own (`diagrams/*.mmd`: subgraphs, classes and link styles,
dashed labelled edges, quoted labels with <, >, # and unicode), so the test is never
empty. Mermaid is loaded on `/docs`, under that page's Content-Security-Policy, from the
app's one file: no chunk, no other request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from browsing import Browser, LiveApp, console_errors, failed_requests, foreign_requests

HERE = Path(__file__).resolve().parent
DIAGRAMS = sorted(HERE.glob("diagrams/*.mmd")) + sorted(
    (HERE.parent / "golden" / "diagrams").glob("*.mmd")
)
MERMAID = "/ui/static/vendor/mermaid/mermaid.min.js"
# What our own diagrams must show, character for character.
LABELS = {
    "quoted_labels.mmd": ["a < b and c > d", "# under ten", "ünïcödé ✓ 日本語", '"x"'],
    "retry_and_catch.mmd": ["retry \u00d72 on Timeout", "catch DivisionByZero → $.error"],
    "subgraph_and_classes.mmd": ["branches of fan_out", "retry: 3 times", "left: echo"],
}

# Load Mermaid once, then render each diagram on its own: what each gave, an SVG or the
# error it raised.
RENDER = """
const [src, diagrams, done] = arguments;
const script = document.createElement("script");
script.src = src;
script.onerror = () => done({loaded: false});
script.onload = async () => {
  mermaid.initialize({startOnLoad: false, securityLevel: "strict"});
  const results = {};
  let index = 0;
  for (const [name, text] of Object.entries(diagrams)) {
    try {
      const {svg} = await mermaid.render(`diagram${index++}`, text);
      results[name] = {svg};
    } catch (error) {
      results[name] = {error: String(error && error.message || error)};
    }
  }
  done({loaded: true, results});
};
document.head.appendChild(script);
"""

# One diagram alone on the page, so that a screenshot shows it whole and its nodes can be
# counted.
SHOW = """
const [svg] = arguments;
document.body.replaceChildren();
const holder = document.createElement("div");
holder.innerHTML = svg;
document.body.appendChild(holder);
const shown = holder.querySelector("svg");
// The whole diagram in the window, for its screenshot.
shown.style.maxWidth = "100vw";
shown.style.maxHeight = "100vh";
const box = shown.getBBox();
return {
  nodes: shown.querySelectorAll("g.node").length,
  edges: shown.querySelectorAll(".edgePaths path, path.flowchart-link").length,
  width: box.width,
  height: box.height,
  text: shown.textContent,
};
"""


def test_there_are_diagrams_of_our_own() -> None:
    assert {path.name for path in DIAGRAMS if path.parent.parent == HERE} == LABELS.keys()


def test_every_diagram_renders_with_the_vendored_mermaid(
    browser: Browser, live_app: LiveApp, screenshot: Callable[[Browser, str], Path]
) -> None:
    browser.get(live_app.url("/docs"))
    diagrams = {path.name: path.read_text(encoding="utf-8") for path in DIAGRAMS}
    outcome = browser.execute_async_script(RENDER, MERMAID, diagrams)
    assert outcome["loaded"], f"{MERMAID} did not load"
    results = outcome["results"]
    errors = {name: result["error"] for name, result in results.items() if "error" in result}
    assert errors == {}
    for name, result in results.items():
        assert result["svg"].startswith("<svg"), name
        assert "Syntax error" not in result["svg"], name
        shown = browser.execute_script(SHOW, result["svg"])
        assert shown["nodes"] >= 2, (name, shown)
        assert shown["edges"] >= 1, (name, shown)
        assert shown["width"] > 0, (name, shown)
        assert shown["height"] > 0, (name, shown)
        for label in LABELS.get(name, ()):
            assert label in shown["text"], (name, label, shown["text"])
        screenshot(browser, name)
    assert console_errors(browser) == []
    assert failed_requests(browser) == []
    assert foreign_requests(browser, live_app.base_url) == []
    scripts = [
        event["request"]["url"]
        for event in browser.network_events("Network.requestWillBeSent")
        if "/vendor/mermaid/" in event["request"]["url"]
    ]
    assert scripts == [live_app.url(MERMAID)]
