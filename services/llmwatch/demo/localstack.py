"""The demo's processes on 127.0.0.1, their ports, and the stack's configs rendered for them.

The project's prometheus/ and alertmanager/ files name compose services (`gateway:4000`); here every service runs
on 127.0.0.1 with its own port, so llmwatch.render points targets and URLs at these ports; rule files are unchanged.
"""

from __future__ import annotations

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

from llmwatch.processes import Child
from llmwatch.render import alertmanager, prometheus


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


def local_prometheus_config(
    repo: Path, ports: Ports, running: set[str], interval: str | None = None, sizing: Path | None = None
) -> dict[str, Any]:
    """prometheus/prometheus.yml at the local processes (llmwatch.render.prometheus.local)."""
    return prometheus.local(repo, ports.by_service(), running, interval, sizing)


def local_alertmanager_config(repo: Path, ports: Ports) -> str:
    """alertmanager/alertmanager.yml as compose runs it with no generic webhook, its URLs at the local processes."""
    return alertmanager.local(repo, ports.by_service())


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
