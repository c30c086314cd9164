"""A tiny upstream on vLLM 0.33's wire format with scripted misbehaviour, for gateway error-path tests.

Run: python -m tests.fakes.vllm PORT. The header `X-Fake` picks the behaviour:
slow (a stream of 200 deltas, 20 ms apart), hang (never answers), error500, error400, broken (stream dies
before [DONE]), late-eof (ends the body 1 s after [DONE], as llama.cpp's server can), tool-call (vLLM's exact
chunks of a reasoning-then-tool-call answer, tests/support/vllm_chunks.py); none = a short R1 stream (answer "c")
or message (answer "4"), whatever the request's tools or response_format. GET /stats reports streams the client
cancelled.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from aiohttp import web

from tests.support.vllm_chunks import MODEL, chunk, r1_stream, tool_message, tool_stream, usage

STATS = {"cancelled": 0, "completed": 0, "requests": 0}


async def health(_: web.Request) -> web.Response:
    return web.Response()


async def models(_: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


async def stats(_: web.Request) -> web.Response:
    return web.json_response(STATS)


def _event(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def completions(request: web.Request) -> web.StreamResponse:
    STATS["requests"] += 1
    body = await request.json()
    mode = request.headers.get("X-Fake", "")
    rid = request.headers.get("X-Request-Id", "")
    if mode == "hang":
        await asyncio.sleep(3600)
    if mode in ("error500", "error400"):
        status = int(mode[-3:])
        err = {"error": {"message": f"fake {status}", "type": "BadRequestError", "param": None, "code": status}}
        return web.json_response(err, status=status, headers={"X-Request-Id": rid})
    weather = ("get_weather", ['{"city": "', "Paris", '"}'])
    if mode == "tool-call" and not body.get("stream"):
        reply = tool_message([(weather[0], "".join(weather[1]))], reasoning="The user wants the weather.")
        return web.json_response(reply, headers={"X-Request-Id": rid})
    if mode == "tool-call":
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Request-Id": rid})
        await resp.prepare(request)
        await resp.write(tool_stream(["The user", " wants", " the weather."], [weather]))
        await resp.write_eof()
        return resp
    if not body.get("stream"):
        message = {"role": "assistant", "content": "4", "reasoning": "2+2"}
        return web.json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "model": MODEL, "usage": usage(5, 3),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }, headers={"X-Request-Id": rid})  # fmt: skip
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Request-Id": rid})
    await resp.prepare(request)
    try:
        if mode == "slow":
            await resp.write(_event(chunk({"role": "assistant", "content": ""})))
            for _ in range(200):
                await resp.write(_event(chunk({"reasoning": "hmm"})))
                await asyncio.sleep(0.02)
        elif mode == "broken":
            await resp.write(_event(chunk({"role": "assistant", "content": ""})) + _event(chunk({"content": "par"})))
            request.transport.close()  # type: ignore[union-attr]
            return resp
        else:
            await resp.write(r1_stream(["a", "b"], ["c"]))
            if mode == "late-eof":
                await asyncio.sleep(1.0)
        STATS["completed"] += 1
    except (asyncio.CancelledError, ConnectionResetError):
        STATS["cancelled"] += 1
        raise
    await resp.write_eof()
    return resp


def main() -> None:
    app = web.Application()
    app.add_routes([
        web.get("/health", health), web.get("/v1/models", models), web.get("/stats", stats),
        web.post("/v1/chat/completions", completions), web.post("/v1/completions", completions),
    ])  # fmt: skip
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, handler_cancellation=True)


if __name__ == "__main__":
    main()
