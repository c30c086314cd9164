"""One connection to an engine and the answer on it: the request written, httptools' parser fed from
`data_received`, and the body relayed from there (see engine_link.py for the pool these connections live in).

A streamed answer is relayed from `data_received`: each body piece goes through the caller's `feed` (the SSE scanner)
and straight to the client (`write_now`), with no future, task wake-up or timer per event. Only when the client
cannot take more does the relaying task step in: the engine's reading pauses, the task awaits the client's `send`,
and reading resumes. The read timeout is one timer per request, re-armed only when it fires while bytes still
arrive. Failures are link_errors.py's `LinkError`s, which it maps to the gateway's errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import cast

import httptools

from llmwatch.gateway.link_errors import LinkClosed, LinkTimeout

# Called with each decoded body piece and when its bytes arrived (time.perf_counter); returns the bytes to forward to
# the client now (b"": nothing).
Feed = Callable[[bytes, float], bytes]
# Writes to the client at once; False: nothing written, only `Send` can (the client's buffer is full).
WriteNow = Callable[[bytes], bool]
Send = Callable[[bytes], Awaitable[None]]

MAX_HEAD_BYTES = 64 * 1024  # the engine's status line and headers together
_EARLY_BYTES = 64 * 1024  # body bytes parsed before the caller reads the body: reading pauses past this
_NO_BODY_STATUS = frozenset({204, 304})
_NO_CONTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "DELETE"})  # without a body, no Content-Length: 0


class _Stop(Exception):
    """Raised in a parser callback to stop parsing (httptools then raises HttpParserCallbackError)."""


class BodyTooLarge(Exception):
    """A body read with `read_body` passed its limit; the connection is not reused."""


class Answer(asyncio.Protocol):
    """One pooled connection to an engine, and the answer to the request it carries."""

    def __init__(self, host_header: str, forget: Callable[[Answer], None]) -> None:
        self._host_header = host_header
        self._forget = forget  # the pool's: an idle connection the engine closed
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
            self._forget(self)
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
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {self._host_header}\r\n"]
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
        # Not after an error answer: an engine that refused a request (a prompt over its context, say) may not have
        # read all of it, and llama.cpp's server was seen to drop such a connection under the next request.
        return (
            self.complete and self.keep_alive and self.failure is None and not self.closed and not self._queued
            and self.status < 400 and self._transport is not None and not self._transport.is_closing()
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
