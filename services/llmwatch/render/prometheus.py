"""prometheus/prometheus.yml (scrape jobs, rule files, Alertmanager) for processes on 127.0.0.1: `make demo` and the
live tests. Compose mounts the file as it is; Kubernetes scrapes through ServiceMonitors (deploy/k8s)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from llmwatch.render import engine_sizing

SOURCE = "prometheus/prometheus.yml"


def _local_target(target: str, ports: Mapping[str, int]) -> str | None:
    host, _, _ = target.partition(":")
    port = ports.get(host)
    return None if port is None else f"127.0.0.1:{port}"


def local(
    repo: Path,
    ports: Mapping[str, int],
    running: set[str],
    interval: str | None = None,
    sizing: Path | None = None,
) -> dict[str, Any]:
    """The source with 127.0.0.1 targets (``ports``: compose service or alias -> local port); jobs whose service is
    not ``running`` are dropped. ``sizing`` is the engine-sizing rule file (engine_sizing.write) that compose would
    render and mount; without it, that rule_files entry is dropped."""
    config: dict[str, Any] = yaml.safe_load((repo / SOURCE).read_text())
    local = {name: port for name, port in ports.items() if name in running or name == "localhost"}
    if interval is not None:
        config["global"]["scrape_interval"] = interval
        config["global"]["evaluation_interval"] = interval
    config["rule_files"] = [
        str(sizing) if pattern.startswith(engine_sizing.COMPOSE_DIR) else str(repo / "prometheus" / pattern)
        for pattern in config.get("rule_files", [])
        if sizing is not None or not pattern.startswith(engine_sizing.COMPOSE_DIR)
    ]
    jobs = []
    for job in config.get("scrape_configs", []):
        if interval is not None:
            job.pop("scrape_interval", None)
        for static in job.get("static_configs", []):
            static["targets"] = [t for t in (_local_target(x, local) for x in static["targets"]) if t]
        if any(static["targets"] for static in job.get("static_configs", [])):
            jobs.append(job)
    config["scrape_configs"] = jobs
    for am in config.get("alerting", {}).get("alertmanagers", []):
        for static in am.get("static_configs", []):
            static["targets"] = [f"127.0.0.1:{ports['alertmanager']}"]
    return config
