"""The probe paths and metrics ports in deploy/k8s, asked of the real llmwatch roles (sim, relay, gateway).

Each role runs on 127.0.0.1 with free ports standing in for the manifest's named ports; every httpGet probe of its
container must answer 200 there, and the gateway's HPA metric and ServiceMonitor port must be served.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, llmwatch_cmd, running, sim_cmd, wait_until
from tests.support.k8s import Obj, build, containers, find, pod_owners

pytestmark = pytest.mark.integration

OVERLAY = "overlays/sim"
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"


def _container(name: str) -> Obj:
    for owner in pod_owners(build(OVERLAY)):
        for container in containers(owner):
            if container["name"] == name:
                return container
    raise AssertionError(f"no container {name} in {OVERLAY}")


def _probes(container: Obj) -> Iterator[tuple[str, str]]:
    """(named port, path) of each httpGet probe."""
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        if kind in container:
            get = container[kind]["httpGet"]
            yield get["port"], get["path"]


def _answers_200(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


def _assert_probes_answer(container: Obj, base: dict[str, str]) -> None:
    probes = list(_probes(container))
    assert probes, f"{container['name']} has no probe"
    for port, path in probes:
        url = base[port] + path
        # readiness may lag liveness by one upstream health round: wait, bounded, for the 200 kubelet waits for.
        wait_until(functools.partial(_answers_200, url), 10, f"{container['name']} {url} 200")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(sim_cmd(port), tmp_path / "sim.log", f"{url}/health"):
        yield url


def test_sim_probes_answer(sim: str) -> None:
    _assert_probes_answer(_container("sim"), {"http": sim})


def test_relay_probes_answer(tmp_path: Path) -> None:
    container = _container("relay")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"LLMWATCH_RELAY_LOG_TARGET": "true"}
    args = llmwatch_cmd("relay", "--host", "127.0.0.1", "--port", str(port))
    with running(args, tmp_path / "relay.log", f"{url}/healthz", env=env):
        _assert_probes_answer(container, {"http": url})
        assert "# TYPE" in httpx.get(f"{url}/metrics", timeout=2).text, "the relay ServiceMonitor scrapes /metrics"


def test_gateway_probes_answer_and_serve_the_hpa_metric(sim: str, tmp_path: Path) -> None:
    container = _container("gateway")
    port, metrics_port = free_port(), free_port()
    url, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    args = llmwatch_cmd(
        "gateway", "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port), "--upstream", sim
    )
    with running(args, tmp_path / "gateway.log", f"{url}/healthz"):
        _assert_probes_answer(container, {"http": url, "metrics": metrics_url})
        assert "llmwatch_requests_in_flight" in httpx.get(f"{metrics_url}/metrics", timeout=2).text


def test_gateway_metrics_port_serves_what_the_service_monitor_scrapes(sim: str, tmp_path: Path) -> None:
    monitor = find(build("overlays/observability"), "ServiceMonitor", "gateway")
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    port, metrics_port = free_port(), free_port()
    url, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    args = llmwatch_cmd(
        "gateway", "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port), "--upstream", sim
    )
    with running(args, tmp_path / "gateway.log", f"{url}/healthz"):
        scraped = wait_until(
            lambda: httpx.get(metrics_url + endpoint["path"], timeout=2).text, 10, "the metrics listener's /metrics"
        )
        assert "llmwatch_requests_in_flight" in scraped
        api = httpx.post(f"{metrics_url}/v1/chat/completions", json={}, timeout=2)
        assert api.status_code != 200, "the metrics listener must not serve the API (the network policy relies on it)"


def test_gateway_finishes_open_streams_after_sigterm(sim: str, tmp_path: Path) -> None:
    """The Deployment's grace period and preStop pause assume that SIGTERM drains streams rather than cutting them."""
    deployment = find(build(OVERLAY), "Deployment", "gateway")
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60
    assert containers(deployment)[0]["lifecycle"]["preStop"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = llmwatch_cmd("gateway", "--host", "127.0.0.1", "--port", str(port), "--upstream", sim)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 64}
    lines: list[str] = []
    with running(args, tmp_path / "gateway.log", f"{url}/readyz") as proc:
        with httpx.Client(timeout=30) as client, client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
            stream = r.iter_lines()
            lines.append(next(stream))
            proc.popen.send_signal(signal.SIGTERM)
            lines.extend(stream)
        proc.popen.wait(30)
    assert "data: [DONE]" in lines, f"the stream was cut at SIGTERM: {lines[-3:]}"
