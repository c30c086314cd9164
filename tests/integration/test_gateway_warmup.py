"""`--warmup N`: the gateway pays the engine's warm-up before users do, logs it as `kind: warmup`, and gives up
waiting after --warmup-timeout. The simulator models vLLM's warm-up penalty (--warmup-requests, --warmup-penalty-ms).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from llmwatch.gateway.warmup import MAX_TOKENS
from llmwatch.vllm.model import R1_SAMPLING
from tests.support.inprocess import MODEL, InProcessGateway, eventually, gateway, serving, simulator

pytestmark = pytest.mark.integration

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "What is 2+2?"}], "max_tokens": 30, "stream": True}
PENALTY_MS = 800.0
COLD = {"warmup_requests": 2, "warmup_penalty_ms": PENALTY_MS, "speed": 1.0}


async def _ready(gw: InProcessGateway) -> None:
    for _ in range(150):
        if (await gw.client.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the gateway was not ready within 15 s")


async def _first_user_ttft_ms(warmup: int) -> tuple[float, InProcessGateway]:
    async with simulator(**COLD) as (url, _), gateway(url, warmup=warmup) as gw:
        await _ready(gw)
        response = await gw.client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 200
        user = [line for line in gw.log.lines if line["kind"] == "chat"]
        assert len(user) == 1
        return float(user[0]["ttft_ms"]), gw


async def test_first_user_after_a_start_pays_no_warmup_penalty_with_warmup() -> None:
    cold_ttft, _ = await _first_user_ttft_ms(warmup=0)
    warm_ttft, gw = await _first_user_ttft_ms(warmup=2)
    assert cold_ttft > 0.75 * PENALTY_MS, f"without --warmup the first user pays the penalty ({cold_ttft} ms)"
    assert warm_ttft < 0.25 * PENALTY_MS, f"with --warmup 2 the first user does not ({warm_ttft} ms)"
    warmups = [line for line in gw.log.lines if line["kind"] == "warmup"]
    assert len(warmups) == 2 and all(line["status"] == 200 and line["completion_tokens"] for line in warmups)
    assert warmups[0]["ttft_ms"] > 0.75 * PENALTY_MS, "the gateway's own first request paid instead"
    assert gw.sample("llmwatch_requests_total", kind="chat") == 1
    assert gw.sample("llmwatch_requests_total", kind="warmup") == 2


async def test_upstream_is_not_ready_until_warmed_and_warms_again_after_an_outage() -> None:
    async with simulator(**COLD) as (url, sim), gateway(url, warmup=2) as gw:
        first = await gw.client.get("/readyz")
        assert first.status_code == 503 and first.json()["upstreams"] == [{"healthy": True, "warm": False}]
        await _ready(gw)
        sim.ready_at = sim.clock() + 0.6  # /health answers 503 for a while, like a restarting engine
        await eventually(lambda: not gw.app.pool.ready, 5, "the outage to be seen")
        await _ready(gw)
        warmups = [line for line in gw.log.lines if line["kind"] == "warmup"]
        assert len(warmups) == 4, "two warm-up requests at start, two after the outage"


async def test_failing_warmup_is_retried_then_the_upstream_is_used_anyway(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="llmwatch.gateway.warmup")
    async with simulator(error_rate=1.0) as (url, _), gateway(url, warmup=1, warmup_timeout=1.5) as gw:
        started = time.monotonic()
        await _ready(gw)
        waited = time.monotonic() - started
        assert 1.0 < waited < 6, waited
        warmups = [line for line in gw.log.lines if line["kind"] == "warmup"]
        assert len(warmups) >= 2, "failures are retried"
        assert all((line["status"], line["error_type"]) == (500, "upstream_error") for line in warmups)
        assert gw.sample("llmwatch_warmup_timeouts_total") == 1
        assert any("did not finish within" in r.getMessage() for r in caplog.records)
        # 5xx of warm-up requests are theirs alone: no user-traffic series moved.
        assert gw.sample("llmwatch_requests_total", kind="chat") == 0
        assert (await gw.client.post("/v1/chat/completions", json=CHAT)).status_code == 500  # the engine fails


def _engine(chat: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.Application:
    """Healthy and serving MODEL; ``chat`` answers its generations."""

    async def health(_: web.Request) -> web.Response:
        return web.Response()

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def _hanging_engine(release: asyncio.Event) -> web.Application:
    """Silent on every generation until ``release``: past the read timeout."""

    async def hang(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    return _engine(hang)


async def test_a_warmup_that_times_out_is_an_upstream_timeout_as_for_users() -> None:
    """The warm-up relays as the proxy does, so an engine past --read-timeout is the same error type for both."""
    release = asyncio.Event()
    async with serving(_hanging_engine(release)) as url, gateway(url, warmup=1, read_timeout=0.3) as gw:
        await eventually(lambda: any(line["kind"] == "warmup" for line in gw.log.lines), 5, "a warm-up line")
        warmup = next(line for line in gw.log.lines if line["kind"] == "warmup")
        assert (warmup["status"], warmup["error_type"]) == (504, "upstream_timeout"), warmup
        user = await gw.client.post("/v1/chat/completions", json=CHAT)
        assert (user.status_code, user.json()["error"]["code"]) == (504, "upstream_timeout")
        assert gw.sample("llmwatch_upstream_errors_total", upstream=url, error_type="upstream_timeout") >= 2
        release.set()


def _recording_engine(bodies: list[dict[str, Any]], peak: list[int]) -> web.Application:
    """Records each generation's body and the most generations it held at once (each is held 0.2 s, so ones sent
    together overlap), and answers with a one-token stream and its usage."""
    in_flight = 0

    async def chat(request: web.Request) -> web.StreamResponse:
        nonlocal in_flight
        bodies.append(await request.json())
        in_flight += 1
        peak[0] = max(peak[0], in_flight)
        await asyncio.sleep(0.2)
        in_flight -= 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
        await response.write(b"data: " + orjson.dumps({**chunk, "choices": [
            {"index": 0, "delta": {"content": "2"}, "finish_reason": "length"}]}) + b"\n\n")  # fmt: skip
        await response.write(b"data: " + orjson.dumps({**chunk, "choices": [], "usage": {
            "prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}}) + b"\n\ndata: [DONE]\n\n")  # fmt: skip
        return response

    return _engine(chat)


async def test_warmup_batch_samples_many_generations_at_once_before_users() -> None:
    """--warmup-batch: vLLM compiles its top-p kernel the first time 8+ sampled streams decode together (a 2.1 s stall
    of every stream on the lent H100); the batch is that moment, before the upstream counts as ready."""
    bodies: list[dict[str, Any]] = []
    peak = [0]
    async with serving(_recording_engine(bodies, peak)) as url, gateway(url, warmup=1, warmup_batch=17) as gw:
        await _ready(gw)
        assert len(bodies) == 18, "one sequential warm-up request, then the batch"
        first, batch = bodies[0], bodies[1:]
        assert "top_p" not in first and first["max_tokens"] == MAX_TOKENS
        assert peak[0] == 17, "the batch's requests were in the engine at once"
        assert sorted(b["max_tokens"] for b in batch) == list(range(MAX_TOKENS, MAX_TOKENS + 17)), (
            "answers end a token apart, so the decoding batch shrinks through every size"
        )
        assert all((b["temperature"], b["top_p"]) == (R1_SAMPLING["temperature"], R1_SAMPLING["top_p"]) for b in batch)
        warmups = [line for line in gw.log.lines if line["kind"] == "warmup"]
        assert len(warmups) == 18 and all(line["status"] == 200 for line in warmups)
        assert gw.sample("llmwatch_requests_total", kind="warmup") == 18


async def test_warmup_batch_past_the_timeout_lets_users_in_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="llmwatch.gateway.warmup")
    release = asyncio.Event()
    engine = _hanging_engine(release)
    async with serving(engine) as url, gateway(url, warmup_batch=4, warmup_timeout=0.5) as gw:
        started = time.monotonic()
        await _ready(gw)
        assert time.monotonic() - started < 5
        assert any("the batch of 4 did not end" in r.getMessage() for r in caplog.records)
        assert gw.sample("llmwatch_warmup_timeouts_total") == 1
        await eventually(lambda: sum(line["kind"] == "warmup" for line in gw.log.lines) == 4, 5, "4 warm-up lines")
        release.set()


COMPILE_MS = 1000.0  # the simulator's --sampler-compile-ms (at speed 1, so the users' streams overlap)


async def _slowest_user_ms(warmup_batch: int) -> float:
    """Ten users streaming R1-sampled chats at once, right after the gateway turns ready: the slowest one's time."""
    async with (
        simulator(sampler_compile_ms=COMPILE_MS, max_num_seqs=32, speed=1.0) as (url, _),
        gateway(url, warmup=1, warmup_batch=warmup_batch) as gw,
    ):
        await _ready(gw)
        chat = {**CHAT, **R1_SAMPLING, "max_tokens": 100}
        users = [gw.client.post("/v1/chat/completions", json=chat) for _ in range(10)]
        assert all(r.status_code == 200 for r in await asyncio.gather(*users))
        return max(float(line["duration_ms"]) for line in gw.log.lines if line["kind"] == "chat")


async def test_the_warmup_batch_takes_the_samplers_compile_from_users() -> None:
    """The simulator models vLLM's first-use compile of its top-p kernel (8+ sampled rows); with --warmup-batch the
    gateway's warm-up meets it, and ten users who arrive together do not."""
    assert await _slowest_user_ms(0) > COMPILE_MS, "without the batch the users' first batch of 8+ pays the compile"
    assert await _slowest_user_ms(17) < COMPILE_MS / 2
