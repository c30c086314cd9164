"""The compose stack's configs, rewritten for processes on 127.0.0.1, and the processes themselves.

The project's prometheus/ and alertmanager/ files name compose services (`gateway:4000`); here every service runs
on 127.0.0.1 with its own port, so targets and URLs are rewritten and the rule files are used unchanged.
"""

from __future__ import annotations

import re
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel
from pydantic_settings import CliSuppress

from llmwatch import engine_sizing
from llmwatch.processes import Child


class Ports(BaseModel):
    """Local port of each service (`--ports.gateway 14000`, or LLMWATCH_DEMO_PORTS='{"gateway": 14000}')."""

    engine: int = 8000
    gateway: int = 4000
    relay: int = 9099
    prometheus: int = 9090
    alertmanager: int = 9093
    # The demo starts no node-exporter (the live alerting test does), so `llmwatch demo` does not offer the flag.
    node_exporter: CliSuppress[int] = 9100

    def by_service(self) -> dict[str, int]:
        """Compose service name (and alias) -> local port."""
        return {
            "engine": self.engine, "vllm": self.engine, "sim": self.engine, "gateway": self.gateway,
            "relay": self.relay, "prometheus": self.prometheus, "localhost": self.prometheus,
            "alertmanager": self.alertmanager, "node-exporter": self.node_exporter,
        }  # fmt: skip


# The services `llmwatch demo` starts, each with a --ports.<service> flag.
DEMO_SERVICES = tuple(name for name in Ports.model_fields if name != "node_exporter")


def _local_target(target: str, ports: dict[str, int]) -> str | None:
    host, _, _ = target.partition(":")
    port = ports.get(host)
    return None if port is None else f"127.0.0.1:{port}"


def local_prometheus_config(
    repo: Path, ports: Ports, running: set[str], interval: str | None = None, sizing: Path | None = None
) -> dict[str, Any]:
    """prometheus/prometheus.yml with 127.0.0.1 targets; jobs whose service is not running locally are dropped.

    ``sizing`` is the engine-sizing rule file (llmwatch.engine_sizing.write) that compose would render and mount.
    """
    config: dict[str, Any] = yaml.safe_load((repo / "prometheus/prometheus.yml").read_text())
    by_service = ports.by_service()
    local = {name: port for name, port in by_service.items() if name in running or name == "localhost"}
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
            static["targets"] = [f"127.0.0.1:{ports.alertmanager}"]
    return config


_URL_HOST = re.compile(r"http://([a-z0-9-]+):(\d+)")


def local_alertmanager_config(repo: Path, ports: Ports) -> str:
    """alertmanager/alertmanager.yml with every http://service:port URL pointed at 127.0.0.1."""
    text = (repo / "alertmanager/alertmanager.yml").read_text()
    # The generic webhook's URL is a deployment secret (entrypoint.sh fills it in); locally there is none.
    text = re.sub(r"\n[ ]*# BEGIN generic-webhook.*?# END generic-webhook[^\n]*", "", text, flags=re.S)
    by_service = ports.by_service()

    def swap(match: re.Match[str]) -> str:
        port = by_service.get(match.group(1))
        return match.group(0) if port is None else f"http://127.0.0.1:{port}"

    return _URL_HOST.sub(swap, text)


@dataclass
class LocalStack:
    """Child processes with their output in ``run_dir``; ``stop`` ends them all, newest first."""

    run_dir: Path
    procs: dict[str, Child] = field(default_factory=dict)

    def start(
        self,
        name: str,
        args: list[str],
        ready_url: str | None,
        timeout: float = 30.0,
        env: dict[str, str] | None = None,
    ) -> None:
        if ready_url is not None:
            _refuse_taken_port(name, ready_url)
        child = Child(args, self.run_dir / f"{name}.log", env, cwd=self.run_dir)
        self.procs[name] = child
        if ready_url is not None:
            child.wait_http(ready_url, timeout)

    def stop(self) -> None:
        for child in reversed(list(self.procs.values())):
            child.stop()
        self.procs.clear()


def _refuse_taken_port(name: str, url: str) -> None:
    # Otherwise another process on the port would answer the readiness probe while ours dies on "address in use".
    parts = urlsplit(url)
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0:
            raise RuntimeError(
                f"port {parts.port} for {name} is already in use (another demo?): stop it, or pick free ports with "
                f"--ports.<service> <port> (services: {', '.join(DEMO_SERVICES)})"
            )


def llmwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmwatch.cli", *args]


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: on Debian, scripts/install.sh demo installs it")
    return path


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
