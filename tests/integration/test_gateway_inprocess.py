"""The gateway's core in-process (ASGI, injected registry and access log) against the simulator on a socket.

Every error type of the error table, usage injection and stripping, reasoning accounting and `kind`; each request
gives exactly one schema-valid log line and one llmwatch_requests_total increment.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import orjson
import pytest
from aiohttp import web

from llmwatch.gateway import prepare
from llmwatch.gateway.errors import ERRORS
from tests.support import REPO, free_port
from tests.support.inprocess import MODEL, InProcessGateway, gateway, serving, simulator

pytestmark = pytest.mark.integration

SCHEMA = json.loads((REPO / "services/llmwatch/gateway/access-log.schema.json").read_text())
ASK = [{"role": "user", "content": "What is 17 * 23?"}]
CHAT = {"model": MODEL, "messages": ASK, "max_tokens": 60}
FAULT = "X-Sim-Fault"  # the simulator's per-request fault header: off the allow-list, let through for these tests


def _one_line(gw: InProcessGateway) -> dict[str, Any]:
    [line] = gw.new_lines()
    jsonschema.validate(line, SCHEMA)
    return line


def _sse_events(text: str) -> list[Any]:
    return [json.loads(x[6:]) for x in text.splitlines() if x.startswith("data: ") and x != "data: [DONE]"]


async def _expect(gw: InProcessGateway, error_type: str, status: int, method: str, path: str, **kw: Any) -> None:
    resp = await gw.client.request(method, path, **kw)
    assert resp.status_code == status, resp.text
    line = _one_line(gw)
    assert (line["status"], line["error_type"]) == (status, error_type), line
    if status < 499 and resp.headers.get("content-type", "").startswith("application/json"):
        error = resp.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]


async def _scripted(status: int = 200, close: bool = False) -> web.Application:
    """An upstream that answers every generation with ``status``, or drops the connection."""

    async def generate(request: web.Request) -> web.StreamResponse:
        if close:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.json_response({"error": {"message": "Invalid API key", "type": "auth"}}, status=status)

    async def health(_: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/v1/chat/completions", generate)
    return app


@pytest.fixture
async def sim() -> AsyncIterator[str]:
    async with simulator(max_model_len=512) as (url, _):
        yield url


async def test_every_error_type_is_logged_once_with_its_status(
    sim: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    seen: set[str] = set()

    async def expect(gw: InProcessGateway, error_type: str, status: int, method: str, path: str, **kw: Any) -> None:
        await _expect(gw, error_type, status, method, path, **kw)
        seen.add(error_type)

    post = "/v1/chat/completions"
    async with gateway(sim, max_body_bytes=4000, forward_header=[FAULT]) as gw:
        await expect(gw, "invalid_json", 400, "POST", post, content=b"{nope")
        await expect(gw, "invalid_request", 400, "POST", post, json={"messages": ASK})
        await expect(gw, "bad_path", 400, "POST", "/v1/%2e%2e/admin/faults", json=CHAT)
        await expect(gw, "route_not_allowed", 404, "POST", "/tokenize", json=CHAT)
        await expect(gw, "method_not_allowed", 405, "GET", post)
        await expect(gw, "body_too_large", 413, "POST", post, json={**CHAT, "pad": "x" * 5000})
        await expect(gw, "context_length", 400, "POST", post, json={**CHAT, "messages": [
            {"role": "user", "content": "word " * 600}]})  # fmt: skip
        await expect(gw, "model_not_found", 404, "POST", post, json={**CHAT, "model": "gpt-9"})
        await expect(gw, "engine_rejected", 400, "POST", post, json={**CHAT, "max_tokens": 0})
        await expect(gw, "upstream_error", 500, "POST", post, json=CHAT, headers={"X-Sim-Fault": "error"})
        stream = await gw.client.post(post, json={**CHAT, "stream": True}, headers={"X-Sim-Fault": "drop"})
        assert stream.status_code == 200 and _sse_events(stream.text)[-1]["error"]["code"] == "upstream_stream_broken"
        assert _one_line(gw)["error_type"] == "upstream_stream_broken"
        seen.add("upstream_stream_broken")
        monkeypatch.setattr(prepare, "request_kind", lambda *_: 1 / 0)
        await expect(gw, "internal_error", 500, "POST", post, json=CHAT)
        monkeypatch.undo()
        assert gw.sample("llmwatch_upstream_errors_total") == 2  # the engine's 500 and the broken stream only
        assert gw.sample("llmwatch_requests_total") == len(gw.log.lines)

    async with simulator(error_status=429) as (url, _), gateway(url, forward_header=[FAULT]) as gw:
        await expect(gw, "engine_overloaded", 429, "POST", post, json=CHAT, headers={"X-Sim-Fault": "error"})
    keys = tmp_path / "keys"
    keys.write_text("alice=sk-alice\n")
    async with gateway(sim, api_keys=keys, max_concurrency_per_key=1, read_timeout=0.3, forward_header=[FAULT]) as gw:
        await expect(gw, "unauthorized", 401, "POST", post, json=CHAT)
        auth = {"Authorization": "Bearer sk-alice"}
        # A stalled stream holds alice's one slot; her second request is refused, then the stall times out.
        held = asyncio.create_task(gw.client.post(post, json={**CHAT, "stream": True, "max_tokens": 200},
                                                  headers={**auth, "X-Sim-Fault": "stall"}))  # fmt: skip
        await asyncio.sleep(0.1)
        resp = await gw.client.post(post, json=CHAT, headers=auth)
        assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
        assert (await held).status_code == 200
        by_type = {line["error_type"] for line in gw.new_lines()}
        assert by_type == {"key_concurrency_limit", "upstream_timeout"}, by_type
        seen |= by_type
    async with gateway(sim, max_concurrency=1, max_stream_seconds=0.3, forward_header=[FAULT]) as gw:
        held = asyncio.create_task(gw.client.post(post, json={**CHAT, "stream": True, "max_tokens": 200},
                                                  headers={"X-Sim-Fault": "stall"}))  # fmt: skip
        await asyncio.sleep(0.1)
        assert (await gw.client.post(post, json=CHAT)).status_code == 429
        assert _sse_events((await held).text)[-1]["error"]["code"] == "stream_too_long"
        by_type = {line["error_type"] for line in gw.new_lines()}
        assert by_type == {"concurrency_limit", "stream_too_long"}, by_type
        seen |= by_type
    async with serving(await _scripted(401)) as url, gateway(url) as gw:
        await expect(gw, "engine_auth", 502, "POST", post, json=CHAT)
    async with serving(await _scripted(close=True)) as url, gateway(url) as gw:
        await expect(gw, "upstream_disconnect", 502, "POST", post, json=CHAT)
    async with gateway(f"http://127.0.0.1:{free_port()}") as gw:
        await expect(gw, "upstream_unreachable", 502, "POST", post, json=CHAT)
    async with gateway(sim, max_response_bytes=100) as gw:
        await expect(gw, "upstream_too_large", 502, "POST", post, json=CHAT)
    async with gateway(sim, body_timeout=0.2) as gw:
        seen.add(await _raw_call(gw, slow_body=True))
        seen.add(await _raw_call(gw, slow_body=False))
    assert seen == set(ERRORS), f"not covered: {sorted(set(ERRORS) - seen)}"


async def _raw_call(gw: InProcessGateway, slow_body: bool) -> str:
    """One raw ASGI request whose body never comes (slow_body) or whose client leaves (else)."""
    sent: list[dict[str, Any]] = []
    body = orjson.dumps(CHAT)

    async def receive() -> dict[str, Any]:
        if slow_body:
            await asyncio.sleep(5)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path = "/v1/chat/completions"
    headers = [(b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers, "client": None}  # fmt: skip
    await gw.app(scope, receive, send)
    line = _one_line(gw)
    expected = ("body_timeout", 408) if slow_body else ("client_disconnect", 499)
    assert (line["error_type"], line["status"]) == expected
    return str(line["error_type"])


async def test_usage_is_added_for_the_log_and_stripped_unless_asked(sim: str) -> None:
    body = {**CHAT, "stream": True}
    async with gateway(sim) as gw:
        plain = _sse_events((await gw.client.post("/v1/chat/completions", json=body)).text)
        asked = _sse_events((await gw.client.post("/v1/chat/completions", json={
            **body, "stream_options": {"include_usage": True}})).text)  # fmt: skip
        lines = gw.new_lines()
    assert not any(e.get("usage") for e in plain), "the client did not ask for usage"
    assert asked[-1]["usage"]["completion_tokens"] == lines[1]["completion_tokens"]
    assert lines[0]["completion_tokens"] == lines[1]["completion_tokens"] > 0  # same seed, same answer
    async with gateway(sim, always_return_usage=True) as gw:
        forced = _sse_events((await gw.client.post("/v1/chat/completions", json=body)).text)
    assert forced[-1]["usage"]["completion_tokens"] == lines[0]["completion_tokens"]


@pytest.mark.parametrize("parser", ["deepseek_r1", ""])
async def test_reasoning_is_split_from_the_answer(parser: str) -> None:
    async with simulator(reasoning_parser=parser) as (url, _), gateway(url) as gw:
        streamed = await gw.client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 400, "stream": True})
        whole = await gw.client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 400})
        lines = gw.new_lines()
    assert streamed.status_code == whole.status_code == 200
    for line in lines:
        jsonschema.validate(line, SCHEMA)
        assert 0 < line["reasoning_tokens"] < line["completion_tokens"], line
        assert line["answer_tokens"] == line["completion_tokens"] - line["reasoning_tokens"]
        assert line["empty_response"] is False
    streamed_line = lines[0]
    assert streamed_line["ttft_ms"] < streamed_line["time_to_answer_ms"] < streamed_line["duration_ms"]


async def test_kind_of_each_request(sim: str) -> None:
    task = [{"role": "user", "content": "### Task:\nGenerate a concise title for this chat."}]
    async with gateway(sim) as gw:
        await gw.client.post("/v1/chat/completions", json=CHAT)
        await gw.client.post("/v1/chat/completions", json={**CHAT, "messages": task})
        await gw.client.post("/v1/chat/completions", json=CHAT, headers={"X-Llmwatch-Kind": "task"})
        models = await gw.client.get("/v1/models")
        assert models.status_code == 200 and models.json()["data"][0]["id"] == MODEL
        one = await gw.client.get("/v1/models/" + MODEL)  # ids contain `/`: forwarded as sent
        assert one.status_code == 404  # vLLM 0.33 has no /v1/models/{id}; the simulator says so too
        kinds = [line["kind"] for line in gw.new_lines()]
        assert kinds == ["chat", "task", "task", "other", "other"]
        assert gw.sample("llmwatch_requests_total", kind="task") == 2


async def test_a_served_models_series_exist_at_zero_before_its_first_request(sim: str) -> None:
    async with gateway(sim) as gw:
        samples = [s for metric in gw.registry.collect() for s in metric.samples]
        names = {(s.name, s.labels.get("model"), s.labels.get("kind")) for s in samples}
        for kind in ("chat", "task"):
            assert ("llmwatch_requests_total", MODEL, kind) in names, "rate() would lose the first requests"
            assert ("llmwatch_request_duration_seconds_count", MODEL, kind) in names
        assert gw.sample("llmwatch_requests_total") == 0
