"""Fixtures shared by every layer: real processes on free ports of 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Child, Gateway, GatewayFactory, free_port, llmwatch_cmd, running, sim_cmd


@pytest.fixture
def sim_url(tmp_path: Path) -> Iterator[str]:
    """A running `llmwatch sim` with fast defaults (no cold start), its base URL without /v1."""
    port = free_port()
    args = sim_cmd(port, "--enable-admin", "--reasoning-parser", "deepseek_r1", "--gpu-profile", "h100")
    with running(args, tmp_path / "sim.log", f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start `llmwatch gateway --upstream URL [extra flags]`; every gateway started is stopped afterwards."""
    started: list[Child] = []

    def start(upstream: str, *extra: str, env: dict[str, str] | None = None) -> Gateway:
        port = free_port()
        log_path = tmp_path / f"access-{port}.log"
        args = llmwatch_cmd(
            "gateway", "--upstream", upstream, "--host", "127.0.0.1", "--port", str(port),
            "--log-file", str(log_path), "--no-log-stdout", "--health-interval", "0.5", *extra,
        )  # fmt: skip
        proc = Child(args, tmp_path / f"gateway-{port}.out", env)
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
