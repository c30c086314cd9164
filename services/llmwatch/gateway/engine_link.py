"""The gateway's HTTP/1.1 client for its engines: a pool of keep-alive connections per engine, on asyncio protocols
and httptools' parser.

A streamed answer is relayed from the connection's `data_received`: each body piece goes through the caller's
`feed` (the SSE scanner) and straight to the client (`write_now`), with no future, task wake-up or timer per event.
Only when the client cannot take more does the relaying task step in: the engine's reading pauses, the task awaits
the client's `send`, and reading resumes. The read timeout is one timer per request, re-armed only when it fires
while bytes still arrive. Failures are the `LinkError`s below; link_errors.py maps them to the gateway's errors.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import cast

import httptools
from yarl import URL

# Called with each decoded body piece and when its bytes arrived (time.perf_counter); returns the bytes to forward to
# the client now (b"": nothing).
Feed = Callable[[bytes, float], bytes]
# Writes to the client at once; False: nothing written, only `Send` can (the client's buffer is full).
WriteNow = Callable[[bytes], bool]
Send = Callable[[bytes], Awaitable[None]]

IDLE_SECONDS = 60.0  # an idle pooled connection is closed after this long
MAX_HEAD_BYTES = 64 * 1024  # the engine's status line and headers together
_EARLY_BYTES = 64 * 1024  # body bytes parsed before the caller reads the body: reading pauses past this
_NO_BODY_STATUS = frozenset({204, 304})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})  # RFC 9110 9.2.2: safe to resend
_NO_CONTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "DELETE"})  # without a body, no Content-Length: 0


class LinkError(Exception):
    """The link to an engine failed (link_errors.py says what each kind becomes)."""


class LinkUnreachable(LinkError):
    """No connection could be opened; the message is the operating system's reason."""


class LinkTimeout(LinkError):
    """Connecting took longer than the connect timeout, or the engine sent nothing for the read timeout."""


class LinkClosed(LinkError):
    """The engine closed the connection before its answer was complete, or broke HTTP's framing."""


class _Stop(Exception):
    """Raised in a parser callback to stop parsing (httptools then raises HttpParserCallbackError)."""


class BodyTooLarge(Exception):
    """A body read with `read_body` passed its limit; the connection is not reused."""


class Answer(asyncio.Protocol):
    """One pooled connection to an engine, and the answer to the request it carries."""

    def __init__(self, link: EngineLink) -> None:
        self._link = link
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._begin()

    def _begin(self) -> None:
        """Per request: clear the last answer's state."""
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_type = b""
        self.content_length: int | None = None
        self._chunked = False
        self._head_request = False
        self._interim = False
        self._head_bytes = 0
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.failure: BaseException | None = None
        self.received = 0  # bytes received for this answer
        self._active = False
        self._feed: Feed | None = None
        self._write_now: WriteNow = _refuse
        self._early: list[tuple[bytes, float]] = []  # body pieces parsed before `relay`, with their arrival
        self._early_bytes = 0
        self._queued: list[bytes] = []
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._read_timeout = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        self._last = time.perf_counter()
        if not self._active or self.complete:
            self.keep_alive = False
            self._abort()  # bytes nobody asked for: the connection cannot be trusted for the next request
            return
        self.received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:  # also what a callback raised to stop the parser
            if self.complete:
                self.keep_alive = False
                self._abort()
            elif self.failure is None:
                self._fail(LinkClosed("sent an answer that is not valid HTTP/1.1"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost says what was missing

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._active:
            self._link._forget(self)
            return
        if self.complete or self.failure is not None:
            return
        if self.head_done and self._until_close():
            self.complete = True  # a body delimited by the connection's end (RFC 9112 6.3, rule 8)
            self.keep_alive = False
            self._stop_timer()
            self._wake()
        else:
            self._fail(LinkClosed("closed the connection before its answer was complete"))

    # -- httptools callbacks -----------------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:
            raise _Stop  # a second answer to one request: the connection is dropped after this one

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            self._fail(LinkClosed(f"sent response headers over {MAX_HEAD_BYTES} bytes"))
            raise _Stop
        self.headers.append((name, value))
        lower = name.lower()
        if lower == b"content-type":
            self.content_type = value.split(b";", 1)[0].strip().lower()
        elif lower == b"content-length":
            self.content_length = int(value) if value.isdigit() else None
        elif lower == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            # An interim answer (103 Early Hints, an unasked-for 100 Continue): the final one follows.
            self._interim = True
            self.headers, self.content_type, self.content_length, self._chunked = [], b"", None, False
            return
        self.status = status
        self.head_done = True
        self._wake()
        if self._head_request:
            # An answer to HEAD has no body whatever its Content-Length says (RFC 9110 9.3.2); httptools cannot be
            # told so, so the parser stops here and the connection is not reused.
            self.complete = True
            self._stop_timer()
            raise _Stop

    def on_body(self, piece: bytes) -> None:
        if self.failure is not None:
            return
        feed = self._feed
        if feed is None:  # the caller has not asked for the body yet
            self._early.append((piece, self._last))
            self._early_bytes += len(piece)
            if self._early_bytes > _EARLY_BYTES:
                self._pause()
            return
        try:
            out = feed(piece, self._last)
            if out:
                if self._queued:
                    self._queued.append(out)
                elif not self._write_now(out):
                    self._queued.append(out)
                    self._pause()
                    self._wake()
        except Exception as exc:  # the caller's (the scanner's limit): the relaying task raises it
            self._fail(exc)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._stop_timer()
        self._wake()

    # -- the relaying task's side ------------------------------------------------------------------------------------
    def send(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, read_timeout: float) -> None:
        """Write the request and start the answer's read timeout."""
        self._begin()
        self._active = True
        self._head_request = method == "HEAD"
        self._read_timeout = read_timeout
        self._last = time.perf_counter()
        self._timer = self._loop.call_later(read_timeout, self._check_silence)
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {self._link.host_header}\r\n"]
        for name, value in headers:
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"a header for the engine holds a line break: {name}")
            lines.append(f"{name}: {value}\r\n")
        if body or method not in _NO_CONTENT:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        assert self._transport is not None
        self._transport.write(head + body if body else head)

    async def head(self) -> None:
        """Wait for the answer's status and headers."""
        while not self.head_done:
            if self.failure is not None:
                raise self.failure
            await self._wait()

    async def relay(self, feed: Feed, write_now: WriteNow, send: Send) -> None:
        """Pass the body through ``feed`` to ``write_now``, or to ``send`` while the client is slow; returns at the
        body's end, raises what ``feed`` raised or a LinkError."""
        self._feed, self._write_now = feed, write_now
        if self._early:
            early, self._early = self._early, []
            self._early_bytes = 0
            last = self._last
            for piece, self._last in early:  # each piece fed with the time it arrived
                self.on_body(piece)
            self._last = last
            if not self._queued:
                self._resume()
        queued = self._queued
        while True:
            if queued:
                out = queued[0] if len(queued) == 1 else b"".join(queued)
                queued.clear()
                await send(out)
                if not queued:
                    self._resume()
                continue
            if self.failure is not None:
                raise self.failure
            if self.complete:
                return
            await self._wait()

    async def read_body(self, limit: int) -> bytes:
        """The whole body; BodyTooLarge once it passes ``limit`` bytes (reading stops there)."""
        if self.content_length is not None and self.content_length > limit and not self._head_request:
            raise BodyTooLarge
        chunks: list[bytes] = []
        size = 0

        def collect(piece: bytes, now: float) -> bytes:
            nonlocal size
            size += len(piece)
            if size > limit:
                raise BodyTooLarge
            chunks.append(piece)
            return b""

        await self.relay(collect, _refuse, _nowhere)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @property
    def reusable(self) -> bool:
        return (
            self.complete and self.keep_alive and self.failure is None and not self.closed and not self._queued
            and self._transport is not None and not self._transport.is_closing()
        )  # fmt: skip

    def finish(self) -> None:
        """The exchange is over (whatever its outcome): stop its timer and callbacks."""
        self._active = False
        self._stop_timer()
        self._feed, self._write_now = None, _refuse
        self._early.clear()
        self._queued.clear()
        self._resume()

    def close(self) -> None:
        self._abort()

    # -- inside ------------------------------------------------------------------------------------------------------
    def _until_close(self) -> bool:
        return (
            self.content_length is None and not self._chunked and self.status not in _NO_BODY_STATUS
            and self.status >= 200
        )  # fmt: skip

    async def _wait(self) -> None:
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        self._stop_timer()
        self._abort()
        self._wake()

    def _abort(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.abort()
        self.closed = True

    def _pause(self) -> None:
        if not self._paused and self._transport is not None and not self.closed:
            self._paused = True
            self._transport.pause_reading()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            self._last = time.perf_counter()  # the client was slow, not the engine: its silence starts now
            if self._transport is not None and not self.closed:
                self._transport.resume_reading()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_silence(self) -> None:
        silent = time.perf_counter() - self._last
        if self._paused or silent < self._read_timeout:
            wait = self._read_timeout if self._paused else self._read_timeout - silent
            self._timer = self._loop.call_later(wait, self._check_silence)
            return
        self._timer = None
        self._fail(LinkTimeout("sent nothing for the read timeout"))


def _refuse(body: bytes) -> bool:
    return False


async def _nowhere(body: bytes) -> None:
    return None


class EngineLink:
    """The connections to one engine: reused while the engine keeps them alive, at most ``max_connections`` open
    (a request beyond that waits for one, within the connect timeout), idle ones closed after ``idle_seconds``."""

    def __init__(
        self,
        base: str,
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        url = URL(base)
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise ValueError(f"an engine URL must be http:// or https:// with a host: {base}")
        self.base = base
        self.host = url.raw_host
        self.port = url.port or (443 if url.scheme == "https" else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if url.explicit_port is None else f"{host}:{self.port}"
        self.prefix = url.raw_path.rstrip("/")
        self._ssl = ssl.create_default_context() if url.scheme == "https" else None
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle_seconds = idle_seconds
        self._idle: collections.deque[Answer] = collections.deque()
        self._open = 0  # connections open or being opened, idle ones included
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def send(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Answer:
        """Send a request (``target``: the path and query, already encoded) and wait for the answer's head. The
        caller reads the body from the Answer and must hand it back with `release`, whatever happens."""
        while True:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    conn = await self._acquire()
            except TimeoutError:
                raise LinkTimeout("did not accept a connection within the connect timeout") from None
            try:
                conn.send(method, target, headers, body, self._read_timeout)
                await conn.head()
            except LinkClosed:
                stale = conn.reused and conn.received == 0
                self.release(conn)
                if stale and method in _IDEMPOTENT:
                    continue  # a kept-alive connection the engine had closed: once more on a fresh one
                raise
            except BaseException:
                self.release(conn)
                raise
            return conn

    def release(self, conn: Answer) -> None:
        """Back to the pool if its answer ended cleanly and the engine keeps it alive; closed otherwise."""
        reusable = conn.reusable and not self._closed
        conn.finish()
        if reusable:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
            if self._sweeper is None:
                self._sweeper = asyncio.get_running_loop().call_later(self._idle_seconds, self._sweep)
        else:
            conn.close()
            self._drop()
        self._wake_one()

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _acquire(self) -> Answer:
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    conn.reused = True
                    return conn
                self._drop()
            if self._open < self._max:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._drop()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # this one's turn passes to the next
                else:
                    waiter.cancel()
                raise

    async def _connect(self) -> Answer:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                lambda: Answer(self), self.host, self.port, ssl=self._ssl,
                server_hostname=self.host if self._ssl is not None else None,
            )  # fmt: skip
        except ssl.SSLError as exc:
            raise LinkUnreachable(f"TLS failed ({exc.reason or exc})") from None
        except OSError as exc:
            raise LinkUnreachable(os.strerror(exc.errno) if exc.errno else str(exc)) from None
        return conn

    def _drop(self) -> None:
        self._open -= 1
        self._wake_one()

    def _forget(self, conn: Answer) -> None:
        """An idle connection closed by the engine."""
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
            self._drop()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _sweep(self) -> None:
        self._sweeper = None
        cutoff = time.monotonic() - self._idle_seconds
        while self._idle and self._idle[0].idle_since <= cutoff:
            self._idle.popleft().close()
            self._drop()
        if self._idle:
            wait = self._idle[0].idle_since + self._idle_seconds - time.monotonic()
            self._sweeper = asyncio.get_running_loop().call_later(max(wait, 0.01), self._sweep)
