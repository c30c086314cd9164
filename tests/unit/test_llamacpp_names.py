"""Every `llamacpp:*` series a dashboard or alert rule reads exists in the real capture of llama-server's /metrics."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support import REPO
from tests.support.llamacpp import capture_names
from tests.support.promql import panels_of, promql_metric_names

pytestmark = pytest.mark.unit


def used_llamacpp_names() -> dict[str, set[str]]:
    """file -> llamacpp:* names its PromQL selects."""
    used: dict[str, set[str]] = {}
    for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        exprs = [t["expr"] for panel in panels_of(dash) for t in panel.get("targets", []) if "expr" in t]
        used[path.name] = {n for e in exprs for n in promql_metric_names(e) if n.startswith("llamacpp:")}
    for path in sorted((REPO / "prometheus" / "rules").glob("*.yml")):
        groups = yaml.safe_load(path.read_text())["groups"]
        exprs = [rule["expr"] for group in groups for rule in group["rules"]]
        used[path.name] = {n for e in exprs for n in promql_metric_names(e) if n.startswith("llamacpp:")}
    return used


def test_capture_is_llama_servers_exposition() -> None:
    names = capture_names()
    assert "llamacpp:tokens_predicted_total" in names and "llamacpp:requests_deferred" in names
    assert all(name.startswith("llamacpp:") for name in names)


def test_every_llamacpp_name_used_exists_in_the_capture() -> None:
    used = used_llamacpp_names()
    assert used["llamacpp.json"] and used["alerts.yml"], "the llama.cpp dashboard and alerts read llamacpp:* series"
    known = capture_names()
    unknown = {f"{where}: {name}" for where, names in used.items() for name in names - known}
    assert not unknown, sorted(unknown)
