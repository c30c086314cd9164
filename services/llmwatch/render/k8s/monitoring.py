"""Prometheus rules and Grafana dashboards as the objects kube-prometheus-stack picks up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmwatch.render import engine_sizing
from llmwatch.render.k8s.objects import PART_OF, RELEASE, dump, rel, scoped

# The Grafana sidecar's default dashboard label (kube-prometheus-stack: grafana.sidecar.dashboards.label).
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
# The engine's flags on Kubernetes, the values compose reads from .env.
ENGINE_FLAGS = "deploy/k8s/base/engine-flags.yaml"


def _rule(name: str, source: str, groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": name, "labels": {**PART_OF, **RELEASE}, "annotations": {"llmwatch/source": source}},
        "spec": {"groups": scoped(groups)},
    }


def prometheus_rules(repo: Path) -> str:
    """One PrometheusRule per prometheus/rules/*.yml, its groups unchanged but for ALERT_LABELS on each alert, and
    the engine sizing rendered from the engine's own ConfigMap (compose renders it from .env)."""
    objects = [
        _rule(f"llmwatch-{path.stem}", rel(path, repo), yaml.safe_load(path.read_text())["groups"])
        for path in sorted((repo / "prometheus/rules").glob("*.yml"))
    ]
    flags = yaml.safe_load((repo / ENGINE_FLAGS).read_text())["data"]
    sizing = yaml.safe_load(engine_sizing.render(repo, flags))["groups"]
    source = f"{engine_sizing.COMPOSE_FILE} configs.{engine_sizing.CONFIG_NAME}"
    objects.append(_rule("llmwatch-engine-sizing", source, sizing))
    return dump(objects, "prometheus/rules/*.yml, engine sizing from base/engine-flags.yaml")


def dashboards(repo: Path) -> str:
    """One ConfigMap per grafana/dashboards/*.json, labelled for the Grafana sidecar."""
    objects = []
    for path in sorted((repo / "grafana/dashboards").glob("*.json")):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"grafana-dashboard-{path.stem}",
                    "labels": {**PART_OF, **DASHBOARD_LABEL},
                    # Read when the sidecar's folderAnnotation is set to grafana_folder (docs/kubernetes.md).
                    "annotations": {"grafana_folder": "llmwatch", "llmwatch/source": rel(path, repo)},
                },
                "data": {path.name: path.read_text()},
            }
        )
    return dump(objects, "grafana/dashboards/*.json")
