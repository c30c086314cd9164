"""Fixtures shared by every layer: real processes on free ports of 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port, llmwatch_cmd, running


@pytest.fixture
def sim_url(tmp_path: Path) -> Iterator[str]:
    """A running `llmwatch sim` with fast defaults (no cold start), its base URL without /v1."""
    port = free_port()
    args = llmwatch_cmd(
        "sim",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--startup-seconds",
        "0",
        "--enable-admin",
        "--reasoning-parser",
        "deepseek_r1",
        "--gpu-profile",
        "h100",
    )
    with running(args, tmp_path / "sim.log", f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"
