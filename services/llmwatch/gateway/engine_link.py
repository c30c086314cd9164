"""The gateway's HTTP/1.1 client for its engines: a pool of keep-alive connections per engine, on asyncio protocols
and httptools' parser. Each connection and the answer on it: engine_answer.py.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import ssl
import time

from yarl import URL

from llmwatch.gateway.engine_answer import Answer
from llmwatch.gateway.link_errors import LinkClosed, LinkTimeout, LinkUnreachable

# An idle pooled connection is closed after this long: before the engine closes it (vLLM's uvicorn and llama.cpp's
# server both keep an idle connection 5 s), so a request rarely meets a connection the engine is closing.
IDLE_SECONDS = 4.0


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
        retried = False
        while True:
            conn = self._kept_alive()  # the common case: no wait, so no timer (asyncio.timeout costs ~6 µs)
            if conn is None:
                try:
                    async with asyncio.timeout(self._connect_timeout):
                        conn = await self._acquire()
                except TimeoutError:
                    raise LinkTimeout("did not accept a connection within the connect timeout") from None
            try:
                conn.send(method, target, headers, body, self._read_timeout)
                await conn.head()
            except LinkClosed:
                stale = conn.reused and conn.received == 0 and not retried
                self.release(conn)
                if stale:
                    # A kept-alive connection the engine had closed, whatever the method: not one byte of an answer
                    # came back, so the engine never took the request up (browsers resend on the same rule). Once
                    # more, on a connection that is not a reused one if the pool has to open one.
                    retried = True
                    continue
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

    def _kept_alive(self) -> Answer | None:
        """The newest idle connection still open and younger than the idle limit; older ones are closed."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and time.monotonic() - conn.idle_since < self._idle_seconds:
                conn.reused = True
                return conn
            conn.close()
            self._drop()
        return None

    async def _acquire(self) -> Answer:
        while True:
            if (conn := self._kept_alive()) is not None:
                return conn
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
                lambda: Answer(self.host_header, self._forget), self.host, self.port, ssl=self._ssl,
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
