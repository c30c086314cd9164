"""The load generator: its own process, the same client for every path (aiohttp on uvloop, one pooled session per URL).

It reads one JSON job per line on stdin and answers one JSON summary per line on stdout, so ``overhead.py`` can run
a warm-up, snapshot CPU counters, then run the measured job on the same warm connections.

Job: ``{"url", "stream", "concurrency", "max_tokens", "duration"?, "requests"?}`` (a closed loop: each of
``concurrency`` workers sends its next request when the last one finished, until ``duration`` seconds or
``requests`` requests). A request counts as completed only if it is a full, well-formed answer: HTTP 200, every
token streamed (``max_tokens`` token chunks), the usage chunk and ``data: [DONE]``; anything else is an error.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import uvloop

from llmwatch.stats import percentile
from llmwatch.vllm.model import MODEL_ID

PROMPT = [{"role": "user", "content": "Why is the sky blue? Answer in one short paragraph."}]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    tokens: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def fail(self, why: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5 and why not in self.error_samples:
            self.error_samples.append(why)


def _token_deltas(obj: dict[str, Any]) -> int:
    n = 0
    for choice in obj.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning") or delta.get("reasoning_content"):
            n += 1
    return n


async def _read_stream(resp: aiohttp.ClientResponse, t0: float, expected: int, tally: Tally) -> str | None:
    """Consume an SSE body; record TTFT and tokens. Returns why the stream is broken, or None if complete."""
    buf, tokens, ttft, done, usage = b"", 0, None, False, False
    async for chunk in resp.content.iter_any():
        buf += chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        *events, buf = buf.split(b"\n\n")
        for event in events:
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    continue
                obj = orjson.loads(payload)
                if "error" in obj:
                    return f"error event: {payload[:200]!r}"
                n = _token_deltas(obj)
                if n and ttft is None:
                    ttft = time.perf_counter() - t0
                tokens += n
                usage = usage or bool(obj.get("usage"))
    if not done:
        return "stream ended without data: [DONE]"
    if tokens != expected:
        return f"streamed {tokens} token chunks, expected {expected}"
    if not usage:
        return "no usage chunk although stream_options.include_usage was set"
    assert ttft is not None
    tally.ttfts.append(ttft)
    tally.tokens += tokens
    return None


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


async def run_job(session: aiohttp.ClientSession, job: dict[str, Any]) -> dict[str, Any]:
    stream, max_tokens = bool(job["stream"]), int(job["max_tokens"])
    request: dict[str, Any] = {
        "model": job.get("model", MODEL_ID),
        "messages": PROMPT,
        "max_tokens": max_tokens,
        "stream": stream,
    }
    if stream:
        request["stream_options"] = {"include_usage": True}
    body, url = orjson.dumps(request), job["url"].rstrip("/") + "/v1/chat/completions"
    limit = job.get("requests")
    deadline = time.perf_counter() + float(job.get("duration") or 1e9)
    tally, started = Tally(), 0

    async def worker() -> None:
        nonlocal started
        while (limit is None or started < limit) and time.perf_counter() < deadline:
            started += 1
            await _one(session, url, body, stream, max_tokens, tally)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(int(job["concurrency"]))))
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
    timeout = aiohttp.ClientTimeout(total=120, sock_connect=10)
    try:
        while line := await reader.readline():
            job = orjson.loads(line)
            if job["url"] not in sessions:
                connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=120)
                sessions[job["url"]] = aiohttp.ClientSession(connector=connector, timeout=timeout)
            result = await run_job(sessions[job["url"]], job)
            sys.stdout.write(orjson.dumps(result).decode() + "\n")
            sys.stdout.flush()
    finally:
        for session in sessions.values():
            await session.close()


def main() -> int:
    uvloop.run(serve_jobs())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
