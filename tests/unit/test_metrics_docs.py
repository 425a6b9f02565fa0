"""docs/operations.md tells the truth about metrics: its table is every metric a process
serves, with its type and labels, and its alert rules use only those metrics."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import yaml
from prometheus_client.parser import text_string_to_metric_families

from taskrunner.catalog import FlowCatalog
from taskrunner.metrics import Metrics
from taskrunner.service import TaskService
from taskrunner.store.memory import InMemoryTaskRepository

GUIDE: Final = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
ROW: Final = re.compile(r"^\| `(taskrunner_\w+)` \| (\w+) \|([^|]*)\| [^|]+ \|$", re.MULTILINE)


def served(catalog: FlowCatalog) -> dict[str, tuple[str, set[str]]]:
    """Every metric a runtime serves once a task has run: name -> (type, labels)."""
    metrics = Metrics()
    repository = InMemoryTaskRepository()
    metrics.watch_queue(repository, lambda: datetime.now(UTC))
    service = TaskService(repository, catalog, observer=metrics)
    service.run_task("echo_add", {"text": "hi", "a": 1, "b": 2})
    metrics.retries.labels("f", "s", "k")
    metrics.http_request("GET", "/healthz", 200, 0.001)
    found: dict[str, tuple[str, set[str]]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        if family.name.endswith("_created"):
            continue  # when each series began: prometheus-client's, on every counter
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {label for sample in family.samples for label in sample.labels if label != "le"}
        found[name] = (family.type, labels)
    return found


def test_the_table_is_every_metric_served(catalog: FlowCatalog) -> None:
    documented = {
        name: (kind, {label.strip(" `") for label in labels.split(",") if label.strip()})
        for name, kind, labels in ROW.findall(GUIDE)
    }
    assert documented == served(catalog)


def test_the_alert_rules_use_only_documented_metrics() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", GUIDE, re.DOTALL)
    [rules] = [yaml.safe_load(block) for block in blocks if "groups:" in block]
    documented = {name for name, _, _ in ROW.findall(GUIDE)}
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(expressions) >= 3
    used = {name for expr in expressions for name in re.findall(r"taskrunner_\w+", expr)}
    assert used
    assert used <= documented
    joined = " ".join(expressions)
    for needed in ("queue_oldest_age", 'status="failed"', "lease_losses"):
        assert needed in joined
