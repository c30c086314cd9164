"""How the gateway is served: uvicorn on uvloop/httptools, with a deadline and a size cap for request heads.

uvicorn's httptools protocol waits for headers forever and takes heads of any size, so a client that trickles
headers holds a connection (and memory) indefinitely. This protocol closes such connections (408 / 431) and counts
them in llmwatch_connections_rejected_total. They never became requests, so they have no access-log line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = 0
            self._arm()

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            self._count(len(url))

        def on_header(self, name: bytes, value: bytes) -> None:
            super().on_header(name, value)
            self._count(len(name) + len(value) + 4)

        def on_headers_complete(self) -> None:
            self._disarm()
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

        def _count(self, size: int) -> None:
            self._head_bytes += size
            if self._head_bytes > max_header_bytes and not self._refused:
                self._refuse("header_too_large")

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


def uvicorn_config(app: Any, host: str, port: int, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        access_log=False,  # the gateway writes its own, richer access log
        log_level="info",
        timeout_keep_alive=75,
        backlog=4096,
        **extra,
    )
