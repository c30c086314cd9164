"""Fixtures shared by every layer: real processes on free ports of 127.0.0.1."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Proc, free_port, llmwatch_cmd, running, scrape, sim_cmd, wait_until


@pytest.fixture
def sim_url(tmp_path: Path) -> Iterator[str]:
    """A running `llmwatch sim` with fast defaults (no cold start), its base URL without /v1."""
    port = free_port()
    args = sim_cmd(port, "--enable-admin", "--reasoning-parser", "deepseek_r1", "--gpu-profile", "h100")
    with running(args, tmp_path / "sim.log", f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"


class Gateway:
    """A running `llmwatch gateway`: its URL, its access-log file, and helpers to read both."""

    def __init__(self, url: str, log_path: Path, proc: Proc) -> None:
        self.url = url
        self.log_path = log_path
        self.proc = proc

    def lines(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def wait_lines(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The access-log lines once ``count`` have been written (the writer is a background thread)."""
        return wait_until(lambda: len(self.lines()) >= count and self.lines(), timeout, f"{count} access-log lines")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return scrape(self.url + "/metrics")


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start `llmwatch gateway --upstream URL [extra flags]`; every gateway started is stopped afterwards."""
    started: list[Proc] = []

    def start(upstream: str, *extra: str, env: dict[str, str] | None = None) -> Gateway:
        port = free_port()
        log_path = tmp_path / f"access-{port}.log"
        args = llmwatch_cmd(
            "gateway", "--upstream", upstream, "--host", "127.0.0.1", "--port", str(port),
            "--log-file", str(log_path), "--no-log-stdout", "--health-interval", "0.5", *extra,
        )  # fmt: skip
        proc = Proc(args, tmp_path / f"gateway-{port}.out", env)
        started.append(proc)
        proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        return Gateway(f"http://127.0.0.1:{port}", log_path, proc)

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def fake_vllm(tmp_path: Path) -> Iterator[str]:
    """tests/fake_vllm.py on a free port: scripted upstream misbehaviour by the X-Fake header."""
    port = free_port()
    args = [sys.executable, "-m", "tests.fake_vllm", str(port)]
    with running(args, tmp_path / "fake-vllm.log", f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"
