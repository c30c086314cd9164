"""`--metrics-port`: a second listener with GET /metrics and GET /readyz alone, so a NetworkPolicy can open it to
Prometheus and the probes only; the API port then serves neither."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support import GatewayFactory, free_port

pytestmark = pytest.mark.integration


def test_metrics_port_serves_metrics_only_and_stops_with_the_gateway(
    start_gateway: GatewayFactory, sim_url: str
) -> None:
    port = free_port()
    gw = start_gateway(sim_url, "--metrics-port", str(port))
    metrics_url = f"http://127.0.0.1:{port}"
    assert (
        httpx.post(
            gw.url + "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        ).status_code
        == 404
    )
    text = httpx.get(metrics_url + "/metrics").text
    assert 'llmwatch_requests_total{kind="chat",model="other",status="404"} 1.0' in text
    # GatewayCPUHigh's series (prometheus_client's ProcessCollector, from /proc): the gateway's own CPU
    assert re.search(r"^process_cpu_seconds_total \d", text, re.MULTILINE), "no process_cpu_seconds_total"
    openmetrics = httpx.get(metrics_url + "/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert httpx.get(metrics_url + "/readyz").json()["ready"] is True
    for path in ("/v1/models", "/healthz", "/docs", "/openapi.json"):
        assert httpx.get(metrics_url + path).status_code == 404, path
    for path in ("/metrics", "/readyz"):
        assert httpx.get(gw.url + path).status_code == 404, f"the API port no longer serves {path}"
    assert httpx.get(gw.url + "/healthz").status_code == 200
    assert gw.proc.stop() in (0, -15)  # uvicorn re-raises the SIGTERM it handled, once both listeners are down
    with pytest.raises(httpx.ConnectError):
        httpx.get(metrics_url + "/metrics")
