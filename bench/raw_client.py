"""The load generator's client for paced streams (bench/loadgen.py): keep-alive HTTP/1.1 connections on asyncio
protocols and httptools that check each streamed body as it arrives, inside ``data_received``.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast
from urllib.parse import urlsplit

import httptools

from bench.stream_check import StreamCheck, Tally, completed

REQUEST_TIMEOUT = 120.0  # seconds a whole request may take


class _StreamConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that checks a streamed body as it arrives, inside ``data_received``.

    The paced workloads' client: at tens of thousands of events a second, each in its own read, aiohttp's task
    wake-up per chunk costs about three times this. httptools parses the response, as uvicorn's does in the gateway.
    """

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.check: StreamCheck | None = None
        self.waiter: asyncio.Future[str | None] | None = None
        self.status = 0
        self.other: list[bytes] = []  # the body of a non-200 answer, for the error message
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._end(f"malformed HTTP response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._end("connection closed before the response ended")

    def request(self, raw: bytes, check: StreamCheck) -> asyncio.Future[str | None]:
        """Send ``raw``; the future resolves at the end of the answer: None, or why it is not a complete stream."""
        assert self.transport is not None
        self.check, self.status, self.other = check, 0, []
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter

    def _end(self, why: str | None) -> None:
        if why is not None:
            self.reusable = False
            if self.transport is not None:
                self.transport.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(why)

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.status != 200 or self.check is None:
            self.other.append(body)
            return
        why = self.check.feed(body)
        if why is not None:
            self._end(why)

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        if self.status != 200:
            self._end(f"HTTP {self.status}: {b''.join(self.other)[:200]!r}")
        self._end(None)


class StreamPool:
    """Idle keep-alive connections to one URL, reused across jobs (the warm-up warms the measured run's)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: list[_StreamConn] = []

    def head(self, path: str, length: int) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\ncontent-type: application/json\r\n"
            f"content-length: {length}\r\n\r\n"
        ).encode()

    async def get(self) -> _StreamConn:
        while self.idle:
            conn = self.idle.pop()
            if conn.reusable and conn.transport is not None and not conn.transport.is_closing():
                return conn
        _, conn = await asyncio.get_running_loop().create_connection(_StreamConn, self.host, self.port)
        return conn

    def put(self, conn: _StreamConn) -> None:
        if conn.reusable:
            self.idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()


async def one_stream(pool: StreamPool, raw: bytes, expected: int, tally: Tally) -> None:
    """One streamed request on the raw client: the same checks and tallies as ``_one``."""
    t0 = time.perf_counter()
    conn: _StreamConn | None = None
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            conn = await pool.get()
            check = StreamCheck(expected, t0)
            why = await conn.request(raw, check) or completed(check, tally)
    except (TimeoutError, OSError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        if conn is not None:
            conn.reusable = False
    if conn is not None:
        pool.put(conn)
    if why is not None:
        tally.fail(why)
        return
    tally.latencies.append(time.perf_counter() - t0)
