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
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import httptools
import orjson
import uvloop

from bench.upstream import TICK_FIELD
from llmwatch.stats import percentile
from llmwatch.vllm.model import MODEL_ID

REQUEST_TIMEOUT = 120.0  # seconds a whole request may take
PROMPT = [{"role": "user", "content": "Why is the sky blue? Answer in one short paragraph."}]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    tokens: int = 0
    events: int = 0  # SSE events (data: lines) of the completed streams
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


_DATA = b"data: "
_DONE = b"data: [DONE]"
_DELTA = b'"delta":{'
# A delta whose first key is one of these, with a string value, is a token chunk when the string is not empty.
_TEXT_KEYS = (b'"content":"', b'"reasoning":"', b'"reasoning_content":"')


def _text_value(data: bytes, at: int) -> int:
    """Where the string value starts if a text key starts at ``at``, else 0."""
    for key in _TEXT_KEYS:
        if data.startswith(key, at):
            return at + len(key)
    return 0


class StreamCheck:
    """Checks one streamed answer as its bytes arrive, without parsing every event as JSON.

    The common event, ``data: {...,"delta":{"content":"x"},...}`` on one line with one delta, is classified by a
    byte scan: a token chunk if its first delta key is content, reasoning or reasoning_content with a non-empty
    string. Everything else (the role chunk, the usage chunk, errors, multi-line events, several choices) is parsed
    as JSON, and so is the first token chunk, to check the scan against the parser once per stream. The verdict is
    the full one: ``max_tokens`` token chunks, a usage chunk and ``data: [DONE]``, else the stream is broken.
    """

    __slots__ = ("buf", "done", "events", "expected", "t0", "tokens", "ttft", "usage")

    def __init__(self, expected: int, t0: float) -> None:
        self.expected, self.t0 = expected, t0
        self.buf = b""
        self.tokens = self.events = 0
        self.ttft: float | None = None
        self.done = self.usage = False

    def feed(self, chunk: bytes) -> str | None:
        """Take the next bytes of the body; returns why the stream is broken as soon as that is known."""
        data = self.buf + chunk if self.buf else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        pos = 0
        while (end := data.find(b"\n\n", pos)) >= 0:
            start, pos = pos, end + 2
            if data.startswith(_DATA, start) and data.find(b"\n", start, end) < 0:
                if data.startswith(_DONE, start) and end - start == len(_DONE):
                    self.events += 1
                    self.done = True
                    continue
                d = data.find(_DELTA, start, end) + len(_DELTA)
                if d >= len(_DELTA) and data.find(_DELTA, d, end) < 0:
                    v = _text_value(data, d)
                    if v:
                        token = data[v] != 0x22  # a non-empty string: no closing `"` right away
                        if self.ttft is not None:
                            self.events += 1
                            self.tokens += token
                            continue
                        tokens = self.tokens  # the first token chunk: parse it too, to check the scan once
                        why = self._parse(data[start:end]) or (
                            None if self.tokens - tokens == token else f"scan misread {data[start:end][:200]!r}"
                        )
                        if why is not None:
                            return why
                        continue
            why = self._parse(data[start:end])
            if why is not None:
                return why
        self.buf = data[pos:]
        return None

    def _parse(self, event: bytes) -> str | None:
        """The slow path: every ``data:`` line of one event, parsed."""
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            self.events += 1
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                continue
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return f"event is not JSON: {payload[:200]!r}"
            if not isinstance(obj, dict):
                return f"event is not a JSON object: {payload[:200]!r}"
            if "error" in obj:
                return f"error event: {payload[:200]!r}"
            n = _token_deltas(obj)
            if n and self.ttft is None:
                self.ttft = time.perf_counter() - self.t0
            self.tokens += n
            self.usage = self.usage or bool(obj.get("usage"))
        return None

    def finish(self) -> str | None:
        """The verdict once the body ended: None if the stream is complete."""
        if not self.done:
            return "stream ended without data: [DONE]"
        if self.tokens != self.expected:
            return f"streamed {self.tokens} token chunks, expected {self.expected}"
        if not self.usage:
            return "no usage chunk although stream_options.include_usage was set"
        return None


def _completed(check: StreamCheck, tally: Tally) -> str | None:
    """The body ended: the verdict, and the stream's TTFT, tokens and events tallied if it is complete."""
    why = check.finish()
    if why is not None:
        return why
    assert check.ttft is not None
    tally.ttfts.append(check.ttft)
    tally.tokens += check.tokens
    tally.events += check.events
    return None


async def _read_stream(resp: aiohttp.ClientResponse, t0: float, expected: int, tally: Tally) -> str | None:
    """Consume an SSE body; record TTFT, tokens and events. Returns why the stream is broken, or None if complete."""
    check = StreamCheck(expected, t0)
    async for chunk in resp.content.iter_any():
        why = check.feed(chunk)
        if why is not None:
            return why
    return _completed(check, tally)


class _StreamConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that checks a streamed body as it arrives, inside ``data_received``.

    The paced workloads' client: at tens of thousands of events a second, each in its own read, aiohttp's task
    wake-up per chunk costs about three times this. httptools parses the response, as uvicorn's does in the gateway.
    """

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.check: StreamCheck | None = None
        self.waiter: asyncio.Future[str | None] | None = None
        self.status = 0
        self.other: list[bytes] = []  # the body of a non-200 answer, for the error message
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._end(f"malformed HTTP response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._end("connection closed before the response ended")

    def request(self, raw: bytes, check: StreamCheck) -> asyncio.Future[str | None]:
        """Send ``raw``; the future resolves at the end of the answer: None, or why it is not a complete stream."""
        assert self.transport is not None
        self.check, self.status, self.other = check, 0, []
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter

    def _end(self, why: str | None) -> None:
        if why is not None:
            self.reusable = False
            if self.transport is not None:
                self.transport.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(why)

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.status != 200 or self.check is None:
            self.other.append(body)
            return
        why = self.check.feed(body)
        if why is not None:
            self._end(why)

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        if self.status != 200:
            self._end(f"HTTP {self.status}: {b''.join(self.other)[:200]!r}")
        self._end(None)


class StreamPool:
    """Idle keep-alive connections to one URL, reused across jobs (the warm-up warms the measured run's)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: list[_StreamConn] = []

    def head(self, path: str, length: int) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\ncontent-type: application/json\r\n"
            f"content-length: {length}\r\n\r\n"
        ).encode()

    async def get(self) -> _StreamConn:
        while self.idle:
            conn = self.idle.pop()
            if conn.reusable and conn.transport is not None and not conn.transport.is_closing():
                return conn
        _, conn = await asyncio.get_running_loop().create_connection(_StreamConn, self.host, self.port)
        return conn

    def put(self, conn: _StreamConn) -> None:
        if conn.reusable:
            self.idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()


async def _one_stream(pool: StreamPool, raw: bytes, expected: int, tally: Tally) -> None:
    """One streamed request on the raw client: the same checks and tallies as ``_one``."""
    t0 = time.perf_counter()
    conn: _StreamConn | None = None
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            conn = await pool.get()
            check = StreamCheck(expected, t0)
            why = await conn.request(raw, check) or _completed(check, tally)
    except (TimeoutError, OSError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        if conn is not None:
            conn.reusable = False
    if conn is not None:
        pool.put(conn)
    if why is not None:
        tally.fail(why)
        return
    tally.latencies.append(time.perf_counter() - t0)


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
                await _one_stream(pools[base], raw, max_tokens, tally)
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
