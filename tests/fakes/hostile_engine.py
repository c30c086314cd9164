"""An engine that records what reaches it and misbehaves on request, on vLLM 0.33's wire format.

It runs in the test's process (an aiohttp app on a free 127.0.0.1 port), so a test reads `received` and sets
`mode` directly. Like vLLM's pydantic request model, it reads `stream` leniently ("true", 1, "yes", "on" are true):
that leniency is what a gateway must not trust (vllm/entrypoints/openai/protocol.py: `stream: bool | None`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support.vllm_chunks import MODEL, chunk, usage

# pydantic's lax bool: what vLLM's request model accepts as true (pydantic/_internal/_validators.py).
_TRUE: set[object] = {True, "1", "true", "True", "TRUE", "yes", "on", "y", "t"}
PROMPT_TOKENS, COMPLETION_TOKENS = 1880, 50


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: Any


@dataclass
class HostileEngine:
    """``mode`` picks the answer to generations: normal, usage-string, usage-list, usage-negative, finish-int,
    huge-body (a 300 MB JSON body), huge-line (a 300 MB SSE line), non-object (JSON chunks that are not objects),
    slow (a long stream)."""

    mode: str = "normal"
    received: list[Received] = field(default_factory=list)
    streams_done: int = 0
    streams_cancelled: int = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    def generations(self) -> list[Received]:
        return [r for r in self.received if r.path == "/v1/chat/completions"]

    async def _health(self, _: web.Request) -> web.Response:
        return web.Response()

    async def _models(self, request: web.Request) -> web.Response:
        self._record(request, None)
        resp = web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        resp.headers["Set-Cookie"] = "engine=1"
        return resp

    def _record(self, request: web.Request, body: Any) -> None:
        self.received.append(Received(request.method, request.path, list(request.headers.items()), body))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self._record(request, body)
        options = body.get("stream_options") or {}
        if self.mode == "huge-body":
            return await self._huge(request, b'{"choices": [], "pad": "', b'"}', "application/json")
        if body.get("stream") not in _TRUE:
            return web.json_response({
                "id": "chatcmpl-1", "object": "chat.completion", "model": MODEL,
                "usage": usage(PROMPT_TOKENS, COMPLETION_TOKENS),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
            }, headers={"Set-Cookie": "engine=1", "X-Engine-Secret": "s"})  # fmt: skip
        if self.mode == "huge-line":
            return await self._huge(request, b"data: {", b"}\n\n", "text/event-stream")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Set-Cookie": "engine=1"})
        await resp.prepare(request)
        events: list[Any] = [chunk({"role": "assistant", "content": ""})]
        rounds = 400 if self.mode == "slow" else COMPLETION_TOKENS - 1
        events += [chunk({"content": "x"}) for _ in range(rounds)]
        events.append(chunk({}, 7 if self.mode == "finish-int" else "stop"))  # type: ignore[arg-type]
        final: dict[str, Any] = {"usage": usage(PROMPT_TOKENS, COMPLETION_TOKENS)}
        if self.mode == "usage-string":
            final = {"usage": "x"}
        elif self.mode == "usage-list":
            final = {"usage": [1, 2]}
        elif self.mode == "usage-negative":
            final = {"usage": {"prompt_tokens": 3, "completion_tokens": -5, "total_tokens": -2}}
        if self.mode == "non-object":
            events += [[1, 2], "text", 3, None]
        if options.get("include_usage") in _TRUE:
            events.append(chunk(None, **final))
        try:
            for event in events:
                await resp.write(b"data: " + orjson.dumps(event) + b"\n\n")
                if self.mode == "slow":
                    await asyncio.sleep(0.01)
            await resp.write(b"data: [DONE]\n\n")
            self.streams_done += 1
        except (asyncio.CancelledError, ConnectionResetError):
            self.streams_cancelled += 1
            raise
        await resp.write_eof()
        return resp

    async def _huge(self, request: web.Request, head: bytes, tail: bytes, content_type: str) -> web.StreamResponse:
        """300 MB in 1 MiB writes: the engine's own memory stays small."""
        size = 300 * 1024 * 1024
        resp = web.StreamResponse(headers={"Content-Type": content_type})
        if content_type == "application/json":
            resp.content_length = len(head) + size + len(tail)
        await resp.prepare(request)
        piece = b"x" * (1024 * 1024)
        try:
            await resp.write(head)
            for _ in range(size // len(piece)):
                await resp.write(piece)
            await resp.write(tail)
        except (ConnectionResetError, asyncio.CancelledError):
            return resp
        await resp.write_eof()
        return resp
