"""The load generator: its own process, the same client for every path (aiohttp on uvloop, one pooled session per URL).

It reads one JSON job per line on stdin and answers one JSON summary per line on stdout, so ``overhead.py`` can run
a warm-up, snapshot CPU counters, then run the measured job on the same warm connections.

Job: ``{"urls", "stream", "concurrency", "max_tokens", "tick_ms"?, "duration"?, "requests"?}`` (a closed loop:
each of ``concurrency`` workers sends its next request when the last one finished, until ``duration`` seconds or
``requests`` requests; worker i sends to ``urls[i % len(urls)]``, so streams spread evenly over several engines).
``tick_ms`` asks the bench upstream for paced tokens (its ``bench_tick_ms`` body field). A request counts as
completed only if it is a full, well-formed answer: HTTP 200, every token streamed (``max_tokens`` token chunks),
the usage chunk and ``data: [DONE]``; anything else is an error.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import uvloop

from bench.raw_client import REQUEST_TIMEOUT, StreamPool, one_stream
from bench.stream_check import StreamCheck, Tally, completed
from bench.upstream import TICK_FIELD
from llmwatch.stats import percentile
from llmwatch.vllm.model import MODEL_ID

PROMPT = [{"role": "user", "content": "Why is the sky blue? Answer in one short paragraph."}]


async def _read_stream(resp: aiohttp.ClientResponse, t0: float, expected: int, tally: Tally) -> str | None:
    """Consume an SSE body; record TTFT, tokens and events. Returns why the stream is broken, or None if complete."""
    check = StreamCheck(expected, t0)
    async for chunk in resp.content.iter_any():
        why = check.feed(chunk)
        if why is not None:
            return why
    return completed(check, tally)


def _check_completion(body: bytes, expected: int) -> str | None:
    obj = orjson.loads(body)
    choices = obj.get("choices") or [{}]
    message = choices[0].get("message") or {}
    if not (message.get("content") or message.get("reasoning") or message.get("reasoning_content")):
        return f"completion without text: {body[:200]!r}"
    completion_tokens = (obj.get("usage") or {}).get("completion_tokens")
    if completion_tokens != expected:
        return f"usage.completion_tokens={completion_tokens}, expected {expected}"
    return None


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, expected: int, tally: Tally
) -> None:
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
            if resp.status != 200:
                tally.fail(f"HTTP {resp.status}: {(await resp.read())[:200]!r}")
                return
            why = (
                await _read_stream(resp, t0, expected, tally)
                if stream
                else _check_completion(await resp.read(), expected)
            )
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
        why = f"{type(exc).__name__}: {exc}"
    if why is not None:
        tally.fail(why)
        return
    tally.latencies.append(time.perf_counter() - t0)


async def run_job(
    sessions: dict[str, aiohttp.ClientSession], pools: dict[str, StreamPool], job: dict[str, Any]
) -> dict[str, Any]:
    """One closed-loop run; paced streams go through the raw client (``StreamPool``), the rest through aiohttp."""
    stream, max_tokens, paced = bool(job["stream"]), int(job["max_tokens"]), bool(job.get("tick_ms"))
    request: dict[str, Any] = {
        "model": job.get("model", MODEL_ID),
        "messages": PROMPT,
        "max_tokens": max_tokens,
        "stream": stream,
    }
    if stream:
        request["stream_options"] = {"include_usage": True}
    if paced:
        request[TICK_FIELD] = job["tick_ms"]
    body, urls = orjson.dumps(request), [str(u) for u in job["urls"]]
    limit = job.get("requests")
    deadline = time.perf_counter() + float(job.get("duration") or 1e9)
    tally, started = Tally(), 0

    async def worker(base: str) -> None:
        nonlocal started
        path = urlsplit(base).path.rstrip("/") + "/v1/chat/completions"
        raw = pools[base].head(path, len(body)) + body
        url = base.rstrip("/") + "/v1/chat/completions"
        while (limit is None or started < limit) and time.perf_counter() < deadline:
            started += 1
            if paced and stream:
                await one_stream(pools[base], raw, max_tokens, tally)
            else:
                await _one(sessions[base], url, body, stream, max_tokens, tally)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(urls[i % len(urls)]) for i in range(int(job["concurrency"]))))
    wall = time.perf_counter() - t0
    done = len(tally.latencies)

    def ms(values: list[float], q: float) -> float | None:
        p = percentile(values, q)
        return None if p is None else p * 1000.0

    return {
        "requests": done,
        "errors": tally.errors,
        "error_samples": tally.error_samples,
        "wall_s": wall,
        "rps": done / wall if wall else None,
        "tokens": tally.tokens,
        "tokens_per_s": tally.tokens / wall if stream and wall else None,
        "events": tally.events if stream else None,
        "events_per_s": tally.events / wall if stream and wall else None,
        "lat_p50_ms": ms(tally.latencies, 50),
        "lat_p99_ms": ms(tally.latencies, 99),
        "ttft_p50_ms": ms(tally.ttfts, 50),
        "ttft_p99_ms": ms(tally.ttfts, 99),
    }


async def serve_jobs() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sessions: dict[str, aiohttp.ClientSession] = {}
    pools: dict[str, StreamPool] = {}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT, sock_connect=10)
    try:
        while line := await reader.readline():
            job = orjson.loads(line)
            for url in job["urls"]:
                if url not in sessions:
                    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=120)
                    sessions[url] = aiohttp.ClientSession(connector=connector, timeout=timeout)
                    pools[url] = StreamPool(url)
            result = await run_job(sessions, pools, job)
            sys.stdout.write(orjson.dumps(result).decode() + "\n")
            sys.stdout.flush()
    finally:
        for pool in pools.values():
            pool.close()
        for session in sessions.values():
            await session.close()


def main() -> int:
    uvloop.run(serve_jobs())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
