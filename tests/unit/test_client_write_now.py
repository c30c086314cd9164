"""The streamed events' short way to the client (gateway/connection.py `write_now`): what uvicorn's `send` would
write, straight to the transport, and a step aside whenever `send` would do more than write."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from llmwatch.gateway.connection import ClientConnection

pytestmark = pytest.mark.unit


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _cycle(transport: _Transport) -> RequestResponseCycle:
    scope: Any = {"type": "http", "method": "POST", "http_version": "1.1", "path": "/", "headers": []}
    log = logging.getLogger("test")
    return RequestResponseCycle(
        scope, transport, FlowControl(transport), log, log, False, [], asyncio.Event(), False, True,  # type: ignore[arg-type]
        lambda: None,
    )  # fmt: skip


async def _started(cycle: RequestResponseCycle, headers: list[tuple[bytes, bytes]]) -> ClientConnection:
    conn = ClientConnection(None, cycle.send)
    await conn.start(200, headers)
    return conn


async def test_writes_what_uvicorns_send_would_write() -> None:
    fast, slow = _Transport(), _Transport()
    conn = await _started(_cycle(fast), [(b"content-type", b"text/event-stream")])
    reference = await _started(_cycle(slow), [(b"content-type", b"text/event-stream")])
    event = b'data: {"choices":[]}\n\n'
    assert conn.write_now(event)
    await reference.send_body(event)
    assert fast.written == slow.written and fast.written[-1] == b"%x\r\n%s\r\n" % (len(event), event)
    await conn.end(b"data: [DONE]\n\n")
    await reference.end(b"data: [DONE]\n\n")
    assert fast.written == slow.written


async def test_steps_aside_when_send_would_wait_or_the_client_is_gone() -> None:
    transport = _Transport()
    cycle = _cycle(transport)
    conn = await _started(cycle, [(b"content-type", b"text/event-stream")])
    cycle.flow.pause_writing()
    assert not conn.write_now(b"x")
    cycle.flow.resume_writing()
    cycle.disconnected = True
    assert not conn.write_now(b"x")
    assert len(transport.written) == 1  # the head only


async def test_only_a_chunked_uvicorn_response_takes_the_short_way() -> None:
    transport = _Transport()
    conn = await _started(_cycle(transport), [(b"content-length", b"3")])
    assert not conn.write_now(b"abc")  # a sized body: uvicorn counts it, so only its send may write

    async def other_server_send(message: Any) -> None:
        pass

    other = ClientConnection(None, other_server_send)
    await other.start(200, [])
    assert not other.write_now(b"x")
