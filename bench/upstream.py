"""The benchmark's engine: a fixed vLLM-shaped HTTP/1.1 server on raw asyncio + httptools + uvloop.

No model. By default no pacing delay: every token chunk is written as soon as the event loop comes round, one chunk
per stream per loop turn, so concurrent streams interleave. A request that sets ``"bench_tick_ms": T`` is paced like
an engine's decode step instead: one ticker per listener and period writes, every T ms, the next event of every
stream paced at T (see ``Ticker``). Responses are pre-rendered (see ``vllm_wire``), which keeps this process far
cheaper per request than any proxy in front of it; ``overhead.py`` reports its CPU share to show that.

Each ``--port`` is one listener with its own tickers: one simulated engine (``overhead.py`` puts several behind one
gateway).

    python -m bench.upstream --host 127.0.0.1 --port 8000 [--port 8001 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import logging
import time
from typing import Any, cast

import httptools
import orjson
import uvloop

from bench import vllm_wire
from llmwatch.vllm.model import MODEL_ID

log = logging.getLogger(__name__)
_ids = itertools.count()
_cache: dict[tuple[int, str, int], list[bytes]] = {}
_SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"


def _events(created: int, model: str, n_tokens: int) -> list[bytes]:
    key = (created, model, n_tokens)
    if key not in _cache:
        if len(_cache) > 64:  # a new second: drop the stale `created` renderings
            _cache.clear()
        _cache[key] = vllm_wire.stream_events(created, model, n_tokens)
    return _cache[key]


def _response(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    head = b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n" % (status.encode(), content_type, len(body))
    return head + body


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (the upstream answers streams with transfer-encoding: chunked)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


TICK_FIELD = "bench_tick_ms"  # request body field asking for paced tokens; the gateway forwards it untouched
MAX_TICK_MS = 1000.0


class _Paced:
    """One paced stream: its pre-rendered events, how far it got, and the future its request task waits on."""

    __slots__ = ("conn", "done", "events", "next", "rid", "tail")

    def __init__(self, conn: _Conn, events: list[bytes], rid: bytes, tail: bytes, done: asyncio.Future[None]) -> None:
        self.conn, self.events, self.rid, self.tail, self.done = conn, events, rid, tail, done
        self.next = 0

    def step(self) -> bool:
        """Write this tick's event(s); False once the stream is finished or its client gone."""
        conn = self.conn
        transport = conn.transport
        if transport is None or transport.is_closing():
            return self._finish()
        if conn.paused:
            return True  # a full socket buffer: skip ticks until resumed, as a stalled client slows nothing else
        i, events, rid = self.next, self.events, self.rid
        # The engine's first output carries the role chunk and the first token; its last, the usage chunk and [DONE].
        data = _chunk(events[i].replace(vllm_wire.ID_MARK, rid))
        if i == 0 and len(events) > 1:
            i = 1
            data += _chunk(events[1].replace(vllm_wire.ID_MARK, rid))
        self.next = i = i + 1
        if i < len(events):
            transport.write(data)
            return True
        transport.write(data + _chunk(self.tail) + b"0\r\n\r\n")
        return self._finish()

    def _finish(self) -> bool:
        if not self.done.done():
            self.done.set_result(None)
        return False


class Ticker:
    """An engine's decode step: one timer per period writes the next event of every stream paced at that period.

    One callback per tick whatever the number of streams (no per-stream timer, no task wake-up per token), re-armed
    against the schedule so timer latency does not add up; when it falls more than a tick behind it does not burst
    to catch up, as an overloaded engine's steps just take longer. It sleeps when no stream is left.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, period_s: float) -> None:
        self.loop, self.period = loop, period_s
        self.streams: list[_Paced] = []
        self.due: float | None = None  # when the armed tick is due; None while idle
        self.ticks = 0

    def add(self, stream: _Paced) -> None:
        """A new stream's first event comes with the next tick (the step that would run its prefill)."""
        self.streams.append(stream)
        if self.due is None:
            self.due = self.loop.time() + self.period
            self.loop.call_at(self.due, self._tick)

    def _tick(self) -> None:
        self.ticks += 1
        self.streams = [s for s in self.streams if s.step()]
        if not self.streams:
            self.due = None
            return
        assert self.due is not None
        now = self.loop.time()
        self.due += self.period
        if self.due < now:
            self.due = now
        self.loop.call_at(self.due, self._tick)


class Engine:
    """One listener's state: its tickers, one per tick period asked for."""

    def __init__(self) -> None:
        self.tickers: dict[float, Ticker] = {}

    def ticker(self, tick_ms: float) -> Ticker:
        ticker = self.tickers.get(tick_ms)
        if ticker is None:
            ticker = self.tickers[tick_ms] = Ticker(asyncio.get_running_loop(), tick_ms / 1000.0)
        return ticker


def _tick_ms(req: dict[str, Any]) -> float | None:
    """The request's pacing (ms per token), None if unpaced; ValueError if out of range."""
    value = req.get(TICK_FIELD)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TICK_MS:
        raise ValueError(f"{TICK_FIELD} must be a number of milliseconds in (0, {MAX_TICK_MS:g}]")
    return float(value)


class _Conn(asyncio.Protocol):
    """One client connection; requests on it are answered in order."""

    def __init__(self, default_tokens: int, engine: Engine) -> None:
        self.default_tokens, self.engine = default_tokens, engine
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.previous: asyncio.Task[None] | None = None
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.paused = False  # what paced streams check on each tick (cheaper than the Event)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(_response("400 Bad Request", vllm_wire.error_body("malformed HTTP request", 400)))
            self.transport.close()

    def pause_writing(self) -> None:
        self.paused = True
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.paused = False
        self.can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.paused = False
        self.can_write.set()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        keep_alive = self.parser.should_keep_alive()
        task = asyncio.get_running_loop().create_task(
            self._answer(self.previous, method, self.url, b"".join(self.body), keep_alive)
        )
        self.previous = task

    async def _answer(
        self, previous: asyncio.Task[None] | None, method: bytes, url: bytes, body: bytes, keep_alive: bool
    ) -> None:
        if previous is not None:
            await previous
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        path = url.split(b"?", 1)[0]
        if method == b"POST" and path == b"/v1/chat/completions":
            await self._chat(transport, body)
        elif method == b"GET" and path in (b"/health", b"/ping"):
            transport.write(_response("200 OK", b""))
        elif method == b"GET" and path == b"/v1/models":
            transport.write(_response("200 OK", vllm_wire.models_body(MODEL_ID)))
        elif method == b"GET" and path == b"/metrics":
            transport.write(_response("200 OK", b"", b"text/plain; version=0.0.4"))
        else:
            msg = f"no route for {method.decode()} {path.decode(errors='replace')}"
            transport.write(_response("404 Not Found", vllm_wire.error_body(msg, 404)))
        if not keep_alive:
            transport.close()

    async def _chat(self, transport: asyncio.Transport, raw: bytes) -> None:
        try:
            req: dict[str, Any] = orjson.loads(raw)
            model = str(req.get("model") or MODEL_ID)
            n_tokens = int(req.get("max_tokens") or req.get("max_completion_tokens") or self.default_tokens)
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
            transport.write(_response("400 Bad Request", vllm_wire.error_body("body must be a JSON object", 400)))
            return
        try:
            tick_ms = _tick_ms(req)
        except ValueError as exc:
            transport.write(_response("400 Bad Request", vllm_wire.error_body(str(exc), 400)))
            return
        rid = f"chatcmpl-bench{next(_ids):012x}"
        prompt_tokens = max(1, len(raw) // 8)
        if not req.get("stream"):
            transport.write(_response("200 OK", vllm_wire.completion_body(rid, model, prompt_tokens, n_tokens)))
            return
        created = int(time.time())
        rid_b = rid.encode()
        tail = b""
        options = req.get("stream_options") or {}
        if isinstance(options, dict) and options.get("include_usage"):
            tail = vllm_wire.usage_event(rid, created, model, prompt_tokens, n_tokens)
        tail += vllm_wire.DONE
        transport.write(_SSE_HEAD)
        events = _events(created, model, n_tokens)
        if tick_ms is not None:
            done = asyncio.get_running_loop().create_future()
            self.engine.ticker(tick_ms).add(_Paced(self, events, rid_b, tail, done))
            await done  # one wake-up per request, none per token
            return
        for event in events:
            if transport.is_closing():
                return
            transport.write(_chunk(event.replace(vllm_wire.ID_MARK, rid_b)))
            if not self.can_write.is_set():
                await self.can_write.wait()
            await asyncio.sleep(0)  # one chunk per stream per loop turn
        transport.write(_chunk(tail) + b"0\r\n\r\n")


async def serve(host: str, ports: list[int], default_tokens: int) -> None:
    """One listener per port, each its own engine (its own tickers), all on this one event loop."""
    loop = asyncio.get_running_loop()
    servers = []
    for port in ports:
        engine = Engine()
        factory = functools.partial(_Conn, default_tokens, engine)
        servers.append(await loop.create_server(factory, host, port, backlog=4096, reuse_address=True))
        log.info("bench upstream on http://%s:%s", host, port)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, action="append", help="listen here; repeat for several engines (default 8000)"
    )
    parser.add_argument("--default-tokens", type=int, default=16, help="tokens when the request sets no max_tokens")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port or [8000], args.default_tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
