"""The measuring loop of the GPU check (bench/closed_loop.py): a failed request is counted in its cell and the loop
goes on, as the first run on the lent GPU needed (one engine hiccup at 256 streams ended the whole sweep there)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from bench.closed_loop import RequestFailed, measure

pytestmark = pytest.mark.integration


def _faults(sim_url: str, **faults: object) -> None:
    assert httpx.post(f"{sim_url}/admin/faults", json=faults).status_code == 200


def test_failed_requests_are_counted_and_the_cell_goes_on(sim_url: str) -> None:
    _faults(sim_url, error_rate=0.3)
    cell = asyncio.run(measure(sim_url, 4, 60, 8))
    assert cell["errors"] > 0 and cell["requests"] > 0
    assert cell["requests"] + cell["errors"] == 60
    assert cell["first_error"].startswith("RequestFailed: HTTP 500")
    assert cell["aggregate_tok_s"] > 0  # of the requests that succeeded


def test_a_cell_where_every_request_failed_is_an_error(sim_url: str) -> None:
    _faults(sim_url, error_rate=1.0)
    with pytest.raises(RequestFailed, match="all 8 requests failed"):
        asyncio.run(measure(sim_url, 2, 8, 8))


def test_streams_spread_over_client_processes_keep_every_request(sim_url: str) -> None:
    """At 256 streams one client process was the limit on the lent GPU; several must still run each request once."""
    cell = asyncio.run(measure(sim_url, 6, 30, 8, processes=2))
    assert cell["client_processes"] == 2
    assert cell["requests"] == 30 and cell["errors"] == 0
    assert cell["completion_tokens"] == 8 and cell["aggregate_tok_s"] > 0
    assert 0 < cell["client_cpu_max_share"] <= 1.5  # one core's share, with timer noise


def test_a_request_the_server_dropped_unanswered_is_resent_once() -> None:
    """llama-server's httplib closes a kept-alive connection after a few requests; a request sent on it as it closes
    gets no answer at all (httpx: "Server disconnected without sending a response"). Resent once, it is no error."""
    events = [b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'] * 3
    events += [b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3}}\n\n', b"data: [DONE]\n\n"]
    body = b"".join(events)
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    seen = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(x for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")).split(b":")[1])
        await reader.readexactly(length)
        seen += 1
        if seen == 1:
            writer.close()  # the first request: dropped unanswered
            return
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def run() -> dict[str, object]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await measure(f"http://127.0.0.1:{port}", 1, 2, 3)

    cell = asyncio.run(run())
    assert (cell["requests"], cell["errors"], seen) == (2, 0, 3)
