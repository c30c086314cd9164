"""Fixtures shared by every layer: real processes on free ports of 127.0.0.1."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmwatch.vllm.model import SERVE_FLAGS
from tests.support import Child, Gateway, GatewayFactory, free_port, llmwatch_cmd, running, sim_cmd
from tests.support.compose import filled_env_text

# The modules that take longest (about a minute or more each, by `pytest --durations`), longest first: on parallel
# workers (make test: --dist loadscope --no-loadscope-reorder) they start at once instead of after the short ones.
SLOWEST_FIRST = tuple(f"integration/test_{name}.py" for name in (
    "doctor_live", "open_webui", "alerting_live", "loadtest", "demo", "filebeat", "bench_smoke",
))  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: n for n, name in enumerate(SLOWEST_FIRST)}
    # Stable: file order within each module and among the rest.
    items.sort(key=lambda item: rank.get(f"{item.path.parent.name}/{item.path.name}", len(rank)))


SIM_FLAGS = ("--enable-admin", *SERVE_FLAGS, "--gpu-profile", "h100")


@contextlib.contextmanager
def _sim(log_dir: Path) -> Iterator[str]:
    port = free_port()
    with running(sim_cmd(port, *SIM_FLAGS), log_dir / "sim.log", f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def sim_url(tmp_path: Path) -> Iterator[str]:
    """A fresh `llmwatch sim` with fast defaults (no cold start), its base URL without /v1: for a test that sets
    faults or counts the engine's metrics from zero."""
    with _sim(tmp_path) as url:
        yield url


@pytest.fixture(scope="module")
def shared_sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `llmwatch sim` like ``sim_url`` for a whole module (vLLM's RemoteOpenAIServer pattern): only for tests
    that leave it as they found it (no faults) and read its counters as differences."""
    with _sim(tmp_path_factory.mktemp("shared-sim")) as url:
        yield url


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
    """tests/fakes/vllm.py on a free port: scripted upstream misbehaviour by the X-Fake header."""
    port = free_port()
    args = [sys.executable, "-m", "tests.fakes.vllm", str(port)]
    with running(args, tmp_path / "fake-vllm.log", f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .env with every variable of .env.example filled in, for the compose binary."""
    path = tmp_path_factory.mktemp("compose") / ".env"
    path.write_text(filled_env_text())
    return path
