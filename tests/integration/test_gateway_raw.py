"""What an HTTP client library won't send, on real sockets: traversal as sent on the wire, partial heads, short
bodies, oversized heads and a client that stops reading. The gateway and the simulator are real processes."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import httpx
import pytest

from tests.support import GatewayFactory, total, wait_until
from tests.support.inprocess import MODEL, eventually, gateway, simulator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim_url(shared_sim_url: str) -> str:
    """The tests here set no faults and read the engine's counters as differences: one simulator serves the module."""
    return shared_sim_url


CHAT = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "2+2?"}], "max_tokens": 20}).encode()
TRAVERSALS = [
    ("GET", "/v1/../admin/faults"),
    ("POST", "/v1/../admin/faults"),
    ("GET", "/v1/%2e%2e/admin/faults"),
    ("POST", "/v1/%2E%2E/admin/faults"),
    ("GET", "/v1/..%2fadmin/faults"),
    ("GET", "/v1/../metrics"),
    ("GET", "/v1/models/../../admin/faults"),
    ("GET", "/v1//../admin/faults"),
    ("GET", "/v1\\..\\admin\\faults"),
    ("GET", "/v1/%252e%252e/admin/faults"),
    ("GET", "/v1/models;x=1"),
]


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _exchange(url: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` + ``body`` as is; the status and the whole answer (the gateway closes or answers in full)."""
    with _connect(url) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < _expected_length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def _expected_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":")[1])
    return 1 << 30


def test_traversal_as_sent_on_the_wire_never_reaches_the_engine(start_gateway: GatewayFactory, sim_url: str) -> None:
    gw = start_gateway(sim_url)
    admin_before = httpx.get(sim_url + "/admin/faults").json()
    hits_before = total(_sim_metrics(sim_url), "http_requests_total", handler="/admin/faults")
    for n, (method, path) in enumerate(TRAVERSALS):
        body = b'{"error_rate": 1}' if method == "POST" else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: gw\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        status, answer = _exchange(gw.url, head.encode(), body)
        assert status == 400, (path, answer)
        assert b'"bad_path"' in answer, answer
        line = gw.wait_lines(n + 1)[-1]
        assert (line["error_type"], line["path"]) == ("bad_path", path), line
    assert httpx.get(sim_url + "/admin/faults").json() == admin_before, "the faults were changed through the gateway"
    # Only this test's own two direct reads of /admin/faults reached the simulator's admin route.
    assert total(_sim_metrics(sim_url), "http_requests_total", handler="/admin/faults") == hits_before + 1


def _sim_metrics(url: str) -> Any:
    from tests.support import scrape

    return scrape(url + "/metrics")


def test_partial_and_oversized_heads_are_closed_and_counted(start_gateway: GatewayFactory, sim_url: str) -> None:
    gw = start_gateway(sim_url, "--header-timeout", "0.5", "--max-header-bytes", "4096")
    with _connect(gw.url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n")  # and never the blank line
        started = time.monotonic()
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert sock.recv(4096) == b"", "the gateway closes the connection"
        assert time.monotonic() - started < 5
    status, _ = _exchange(gw.url, b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nX-Pad: " + b"x" * 8000 + b"\r\n\r\n")
    assert status == 431
    metrics = gw.metrics()
    assert total(metrics, "llmwatch_connections_rejected_total", reason="header_timeout") == 1
    assert total(metrics, "llmwatch_connections_rejected_total", reason="header_too_large") == 1
    assert gw.lines() == [], "a head that never completed is not a request"
    assert httpx.get(gw.url + "/v1/models", timeout=5).status_code == 200, "the gateway still serves"


def test_body_shorter_than_its_content_length(start_gateway: GatewayFactory, sim_url: str) -> None:
    gw = start_gateway(sim_url, "--body-timeout", "0.5")
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: 500\r\n\r\n"
    status, answer = _exchange(gw.url, head, CHAT[:20])  # then the client waits, and so does the body
    assert status == 408 and b'"body_timeout"' in answer, answer
    with _connect(gw.url) as sock:  # this client gives up before the body is complete
        sock.sendall(head + CHAT[:20])
        wait_until(lambda: len(gw.lines()) == 1, 5, "the first line")
    lines = gw.wait_lines(2)
    assert [(x["status"], x["error_type"]) for x in lines] == [(408, "body_timeout"), (499, "client_disconnect")]


async def test_a_client_that_stops_reading_mid_stream_costs_one_line_and_a_bounded_wait() -> None:
    """uvicorn's flow control blocks `send` while the client reads nothing: that is what `send` does here."""
    async with simulator() as (url, sim), gateway(url, max_stream_seconds=1.0) as gw:
        sent: list[dict[str, Any]] = []
        stalled = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if len(sent) >= 3:  # the head and two chunks got out; then the client's window stays shut
                stalled.set()
                await asyncio.Event().wait()

        body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2000,
                           "stream": True}).encode()  # fmt: skip
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
                 "raw_path": b"/v1/chat/completions", "client": ("127.0.0.1", 1),
                 "headers": [(b"content-length", str(len(body)).encode())]}  # fmt: skip
        messages = iter([{"type": "http.request", "body": body, "more_body": False}])

        async def first_then_wait() -> dict[str, Any]:
            message = next(messages, None)
            return message if message is not None else await receive()

        started = time.monotonic()
        await asyncio.wait_for(gw.app(scope, first_then_wait, send), 10)
        assert stalled.is_set()
        assert time.monotonic() - started < 5, "bounded by --max-stream-seconds plus one last-event grace"
        [line] = gw.new_lines()
        assert (line["status"], line["error_type"]) == (504, "stream_too_long")
        assert gw.sample("llmwatch_requests_in_flight") == 0
        await eventually(lambda: not sim.engine.running and not sim.engine.waiting, 5, "the engine to drop it")
