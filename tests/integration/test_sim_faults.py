"""Each injected fault is seen by a client, then switched off at run time through POST /admin/faults."""

from __future__ import annotations

import itertools
import re
import time

import httpx
import pytest

pytestmark = pytest.mark.integration
BODY = {"messages": [{"role": "user", "content": "Tell me about faults"}], "max_tokens": 40, "stream": True}


def _set(sim_url: str, **faults: object) -> dict[str, object]:
    response = httpx.post(f"{sim_url}/admin/faults", json=faults)
    assert response.status_code == 200, response.text
    current: dict[str, object] = response.json()
    return current


def _stream(sim_url: str, headers: dict[str, str] | None = None) -> tuple[int, list[str], float, float]:
    """(status, data payloads, time to first data, longest gap between data lines)."""
    start = time.monotonic()
    stamps: list[float] = []
    events: list[str] = []
    try:
        with httpx.stream("POST", f"{sim_url}/v1/chat/completions", json=BODY, headers=headers, timeout=30) as r:
            if r.status_code != 200:
                r.read()
                return r.status_code, [r.text], 0.0, 0.0
            for line in r.iter_lines():
                if line.startswith("data: "):
                    stamps.append(time.monotonic())
                    events.append(line[6:])
    except httpx.RemoteProtocolError:
        events.append("<connection dropped>")
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return 200, events, (stamps[0] - start) if stamps else 0.0, max(gaps, default=0.0)


def test_error_fault_then_off(sim_url: str) -> None:
    _set(sim_url, error_rate=1.0, error_status=503)
    status, events, _, _ = _stream(sim_url)
    assert status == 503 and '"type":"Service Unavailable"' in events[0] and '"code":503' in events[0]
    _set(sim_url, error_rate=0.0)
    assert _stream(sim_url)[1][-1] == "[DONE]"
    metrics = httpx.get(f"{sim_url}/metrics").text
    assert 'http_requests_total{handler="/v1/chat/completions",method="POST",status="5xx"} 1.0' in metrics
    assert re.search(r'finished_reason="length"[^}]*} 1.0', metrics)  # the refused request never reached the engine


def test_empty_fault_then_off(sim_url: str) -> None:
    _set(sim_url, empty_rate=1.0)
    done = httpx.post(f"{sim_url}/v1/chat/completions", json={**BODY, "stream": False}).json()
    assert done["usage"]["completion_tokens"] == 0 and not done["choices"][0]["message"]["content"]
    _set(sim_url, empty_rate=0.0)
    done = httpx.post(f"{sim_url}/v1/chat/completions", json={**BODY, "stream": False}).json()
    assert done["usage"]["completion_tokens"] == 40


def test_stall_and_ttft_delay_then_off(sim_url: str) -> None:
    assert _set(sim_url, stall_rate=1.0, stall_seconds=1.0, ttft_delay_ms=600)["stall_rate"] == 1.0
    _, events, ttft, gap = _stream(sim_url)
    assert events[-1] == "[DONE]" and ttft >= 0.6 and gap >= 0.9
    _set(sim_url, stall_rate=0.0, ttft_delay_ms=0)
    _, events, ttft, gap = _stream(sim_url)
    assert events[-1] == "[DONE]" and ttft < 0.5 and gap < 0.5


def test_drop_fault_then_off(sim_url: str) -> None:
    _set(sim_url, drop_rate=1.0)
    _, events, _, _ = _stream(sim_url)
    assert "[DONE]" not in events and 1 < len(events) < 42
    _set(sim_url, drop_rate=0.0)
    assert _stream(sim_url)[1][-1] == "[DONE]"
    assert re.search(r'finished_reason="abort"[^}]*} 1.0', httpx.get(f"{sim_url}/metrics").text)


def test_latency_multiplier_slows_every_token(sim_url: str) -> None:
    _, _, _, base_gap = _stream(sim_url)
    _set(sim_url, latency_multiplier=30.0)  # h100: ~1.2 ms per token -> ~35 ms
    start = time.monotonic()
    assert _stream(sim_url)[1][-1] == "[DONE]"
    assert time.monotonic() - start > 40 * 0.03
    _set(sim_url, latency_multiplier=1.0)
    assert base_gap < 0.1


def test_header_forces_a_fault_on_one_request(sim_url: str) -> None:
    status, _, _, _ = _stream(sim_url, {"X-Sim-Fault": "error"})
    assert status == 500
    assert "[DONE]" not in _stream(sim_url, {"X-Sim-Fault": "drop"})[1]
    assert _stream(sim_url)[1][-1] == "[DONE]"  # the next request is healthy
    bad = httpx.post(f"{sim_url}/v1/chat/completions", json=BODY, headers={"X-Sim-Fault": "explode"})
    assert bad.status_code == 400 and "X-Sim-Fault" in bad.json()["error"]["message"]


def test_admin_validates_and_shows_settings(sim_url: str) -> None:
    assert httpx.post(f"{sim_url}/admin/faults", json={"error_rate": 2}).status_code == 400
    assert httpx.post(f"{sim_url}/admin/faults", json={"nonsense": 1}).status_code == 400
    shown = httpx.get(f"{sim_url}/admin/faults").json()
    assert shown["error_rate"] == 0.0 and shown["force_header"] == "X-Sim-Fault"
