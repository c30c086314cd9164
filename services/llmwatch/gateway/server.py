"""How the gateway is served: uvicorn on uvloop/httptools, with a deadline and a size cap for request heads.

uvicorn's httptools protocol waits for headers forever and takes heads of any size, so a client that trickles
headers holds a connection (and memory) indefinitely. This protocol closes such connections (408 / 431) and counts
them in llmwatch_connections_rejected_total. They never became requests, so they have no access-log line.

The head's size is counted in raw bytes as they arrive: httptools hands a header to the protocol only once its line
ends, and grows the value with `bytes +=` meanwhile, so an endless header line would cost quadratic CPU and
unbounded memory before any per-header count saw it. Two more mends to uvicorn's protocol, so that every request
gets its line: a client that closes a connection with pipelined requests disconnects all of them (uvicorn only
tells the last one parsed, and never starts the queued ones), and a malformed chunk size in a body being read is
marked on the request, so the gateway logs a 400 rather than a client disconnect. And one saving: the running
request hears of a lost connection from connection_lost itself (ON_DISCONNECT), not from a task of its own that
waits on `receive` (a task per request was a twentieth of a non-streamed request's CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from llmwatch.gateway.connection import MALFORMED_BODY, ON_DISCONNECT

_CLOSE = b"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_REPLIES = {
    "header_timeout": b"HTTP/1.1 408 Request Timeout" + _CLOSE,
    "header_too_large": b"HTTP/1.1 431 Request Header Fields Too Large" + _CLOSE,
}


def guarded_protocol(header_timeout: float, max_header_bytes: int, rejected: Counter) -> type[HttpToolsProtocol]:
    """An HttpToolsProtocol that gives each request head ``header_timeout`` seconds and ``max_header_bytes``."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0
        _in_head = True
        _refused = False
        _running: RequestResponseCycle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            running, queued = self._running, list(self.pipeline)
            self.pipeline.clear()
            super().connection_lost(exc)
            if running is not None and not running.response_complete:
                running.disconnected = True
                running.message_event.set()
                for callback in running.scope["state"].get(ON_DISCONNECT, ()):
                    callback()
            for cycle, app in reversed(queued):  # the pipeline is appended on the left
                cycle.disconnected = True
                cycle.message_event.set()
                super()._start_asgi_task(cycle, app)  # it reads a disconnect at once: a 499 with its line

        def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
            self._running = cycle
            cycle.scope["state"][ON_DISCONNECT] = []  # the request's connection registers here (connection.py)
            super()._start_asgi_task(cycle, app)

        def data_received(self, data: bytes) -> None:
            # Feed a head no further than the limit allows; past it, refuse before httptools buffers any more.
            while self._in_head and not self._refused and data:
                room = max_header_bytes - self._head_bytes
                if room <= 0:
                    self._refuse("header_too_large")
                    return
                piece, data = data[:room], data[room:]
                was_in_head = self._in_head
                super().data_received(piece)
                if was_in_head and self._in_head:
                    self._head_bytes += len(piece)
                if self.parser is None or self.transport.is_closing():
                    return
            if data and not self._refused:
                super().data_received(data)

        def send_400_response(self, msg: str) -> None:
            cycle = self.cycle
            if cycle is not None and not self._in_head and not cycle.response_started and cycle.more_body:
                cycle.scope["state"][MALFORMED_BODY] = True
            super().send_400_response(msg)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = 0
            self._in_head = True
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            self._in_head = False
            if not self._refused:
                super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self._refused:
                super().on_message_complete()

        def _arm(self) -> None:
            if self._head_timer is None and not self._refused:
                self._head_timer = self.loop.call_later(header_timeout, self._refuse, "header_timeout")

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _refuse(self, reason: str) -> None:
            self._head_timer = None
            self._refused = True
            rejected.labels(reason).inc()
            if not self.transport.is_closing():
                self.transport.write(_REPLIES[reason])
                self.transport.close()

    return GuardedHttpToolsProtocol


class QuietServer(uvicorn.Server):
    """A second listener in the same process: the main server owns the signals and stops this one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def uvicorn_config(app: Any, host: str, port: int, forwarded_allow_ips: list[str], **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # uvicorn trusts X-Forwarded-* from 127.0.0.1 by default, so any local client could name its client_ip.
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=",".join(forwarded_allow_ips) or None,
        ws="none",  # no WebSocket: an upgrade reaches the proxy as HTTP and is refused there, with a line
        loop="uvloop",
        access_log=False,  # the gateway writes its own, richer access log
        log_level="info",
        timeout_keep_alive=75,
        backlog=4096,
        **extra,
    )
