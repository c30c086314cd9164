"""The benchmark's engine: a fixed vLLM-shaped HTTP/1.1 server on raw asyncio + httptools + uvloop.

No model and no pacing delay: every token chunk is written as soon as the event loop comes round, one chunk per
stream per loop turn, so concurrent streams interleave the way an engine's decode steps do. Responses are
pre-rendered (see ``vllm_wire``), which keeps this process far cheaper per request than any proxy in front of it;
``overhead.py`` reports its CPU share to show that.

    python -m bench.upstream --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


class _Conn(asyncio.Protocol):
    """One client connection; requests on it are answered in order."""

    def __init__(self, default_tokens: int) -> None:
        self.default_tokens = default_tokens
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.previous: asyncio.Task[None] | None = None
        self.can_write = asyncio.Event()
        self.can_write.set()

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
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
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
        rid = f"chatcmpl-bench{next(_ids):012x}"
        prompt_tokens = max(1, len(raw) // 8)
        if not req.get("stream"):
            transport.write(_response("200 OK", vllm_wire.completion_body(rid, model, prompt_tokens, n_tokens)))
            return
        created = int(time.time())
        rid_b = rid.encode()
        transport.write(_SSE_HEAD)
        for event in _events(created, model, n_tokens):
            if transport.is_closing():
                return
            data = event.replace(vllm_wire.ID_MARK, rid_b)
            transport.write(b"%x\r\n%s\r\n" % (len(data), data))
            if not self.can_write.is_set():
                await self.can_write.wait()
            await asyncio.sleep(0)  # one chunk per stream per loop turn, like an engine's decode step
        tail = b""
        options = req.get("stream_options") or {}
        if isinstance(options, dict) and options.get("include_usage"):
            tail = vllm_wire.usage_event(rid, created, model, prompt_tokens, n_tokens)
        tail += vllm_wire.DONE
        transport.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))


async def serve(host: str, port: int, default_tokens: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(default_tokens), host, port, backlog=4096, reuse_address=True)
    log.info("bench upstream on http://%s:%s", host, port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--default-tokens", type=int, default=16, help="tokens when the request sets no max_tokens")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port, args.default_tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
