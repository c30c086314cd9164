"""The one measuring loop: N streamed chat requests kept in flight (closed loop), each timed by token; TTFT, ITL,
TPOT, per-stream and aggregate tok/s, req/s. bench/engine_kpis.py and bench/gpu_check's sweep use it."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import multiprocessing
import statistics
import time
from collections.abc import Sequence
from typing import Any

import httpx

from llmwatch.stats import percentile
from llmwatch.vllm.model import MODEL_ID, R1_SAMPLING

MODEL_NAME = MODEL_ID
# About 60 prompt tokens with the distill's template: a short chat question, as in the load test.
PROMPT = (
    "You are helping an operator size a small inference server. Explain, step by step, how the number of "
    "concurrent requests changes time to first token and tokens per second on a CPU, and what to watch."
)


class RequestFailed(Exception):
    """The server answered a request with an error status, or its stream carried no tokens or no usage."""


def chat_body(messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    """A streamed chat request that generates exactly ``max_tokens`` tokens, whatever the (random) weights say."""
    return {
        "model": MODEL_NAME,
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "cache_prompt": False,  # llama.cpp: every request pays its prefill, as distinct users' prompts do
        **R1_SAMPLING,
    }


async def one_request(
    client: httpx.AsyncClient, url: str, max_tokens: int, messages: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One streamed request: TTFT, the gaps between tokens (ITL), TPOT and the usage the server reported."""
    body = chat_body(messages or [{"role": "user", "content": PROMPT}], max_tokens)
    sent = time.perf_counter()
    times: list[float] = []
    usage: dict[str, Any] = {}
    async with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as resp:
        if resp.status_code != 200:
            raise RequestFailed(f"HTTP {resp.status_code}: {(await resp.aread())[:300]!r}")
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning"):
                    times.append(time.perf_counter())
    if not times or not usage:
        raise RequestFailed("a stream carried no tokens or no usage")
    tokens = int(usage["completion_tokens"])
    first, last = times[0], times[-1]
    tpot = (last - first) / (tokens - 1) if tokens > 1 and last > first else None
    return {
        "ttft_s": first - sent,
        "itl_s": [b - a for a, b in itertools.pairwise(times)],
        "tpot_s": tpot,
        "stream_tok_s": 1.0 / tpot if tpot else float("nan"),
        "completion_tokens": tokens,
        "prompt_tokens": int(usage["prompt_tokens"]),
    }


# One client process carried 64 streams at an H100's 16,000 tok/s at 96-97% of its core, so near its limit; and on a
# slower H100 host two processes of 32 streams ran at 88-92% (docs/gpu-check.md). 16 streams a process leaves room.
STREAMS_PER_PROCESS = 16
_UNANSWERED = "without sending a response"  # httpx: the connection closed before any byte of an answer


async def measure(
    url: str, streams: int, requests: int, max_tokens: int, prompts: list[list[dict[str, str]]] | None = None,
    headers: dict[str, str] | None = None, processes: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``streams`` clients each send streamed requests back to back (closed loop) until ``requests`` are done.

    The prompts are taken in turn; aggregate tok/s and req/s are totals over the cell's wall time, of the requests
    that succeeded. A failed request is counted in ``errors`` (the first one's message in ``first_error``) and its
    client goes on with the next: one failure does not end the cell. RequestFailed when every request failed.

    The streams are spread over ``processes`` client processes (default: one per STREAMS_PER_PROCESS streams), which
    start together once all are ready; ``client_cpu_max_share`` is the busiest one's share of its core, so a cell
    whose client was the limit shows it (near 1.0).
    """
    processes = processes or max(1, math.ceil(streams / STREAMS_PER_PROCESS))
    if processes == 1:
        parts = [await _client(url, streams, range(requests), max_tokens, prompts, headers)]
    else:
        parts = _in_processes(url, streams, requests, max_tokens, prompts, headers, processes)
    results = [r for part in parts for r in part["results"]]
    failures = [f for part in parts for f in part["failures"]]
    wall = max(p["ended"] for p in parts) - min(p["started"] for p in parts)
    if not results:
        raise RequestFailed(f"all {len(failures)} requests failed; the first: {failures[0]}")
    ttfts = [1000 * r["ttft_s"] for r in results]
    itls = [1000 * g for r in results for g in r["itl_s"]]
    tpots = [1000 * r["tpot_s"] for r in results if r["tpot_s"]]
    return {
        "streams": streams,
        "requests": len(results),
        "seconds": wall,
        "prompt_tokens": statistics.median(r["prompt_tokens"] for r in results),
        "completion_tokens": statistics.median(r["completion_tokens"] for r in results),
        "ttft_ms_p50": percentile(ttfts, 50),
        "ttft_ms_p99": percentile(ttfts, 99),
        "ttft_ms_max": max(ttfts),
        "itl_ms_p50": percentile(itls, 50),
        "tpot_ms_p50": percentile(tpots, 50),
        "stream_tok_s_median": statistics.median(r["stream_tok_s"] for r in results),
        "aggregate_tok_s": sum(r["completion_tokens"] for r in results) / wall,
        "req_s": len(results) / wall,
        "errors": len(failures),
        "first_error": failures[0] if failures else None,
        "client_processes": processes,
        "client_cpu_max_share": max(p["cpu"] / max(p["ended"] - p["started"], 1e-9) for p in parts),
    }


async def _client(
    url: str, streams: int, indices: Sequence[int], max_tokens: int, prompts: list[list[dict[str, str]]] | None,
    headers: dict[str, str] | None,
) -> dict[str, Any]:  # fmt: skip
    """One process's share: ``streams`` closed-loop clients over the requests numbered ``indices``."""
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    todo = iter(indices)

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in todo:
            messages = prompts[i % len(prompts)] if prompts else None
            for resend in (True, False):
                try:
                    results.append(await one_request(client, url, max_tokens, messages, headers))
                except httpx.RemoteProtocolError as exc:
                    # A kept-alive connection the server closed as the request went out (llama-server's httplib
                    # closes after a few requests): nothing was answered, so resend once, as HTTP clients do.
                    if resend and _UNANSWERED in str(exc):
                        continue
                    failures.append(_failure(exc))
                except (RequestFailed, httpx.HTTPError) as exc:
                    failures.append(_failure(exc))
                break

    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as client:
        cpu, started = time.process_time(), time.monotonic()  # CLOCK_MONOTONIC: comparable across processes
        await asyncio.gather(*(client_loop(client) for _ in range(streams)))
        ended = time.monotonic()
    return {"results": results, "failures": failures, "started": started, "ended": ended,
            "cpu": time.process_time() - cpu}  # fmt: skip


def _failure(exc: BaseException) -> str:
    """How a failed request is reported in a cell's ``first_error``."""
    return f"{type(exc).__name__}: {exc}"[:300]


def _in_processes(
    url: str, streams: int, requests: int, max_tokens: int, prompts: list[list[dict[str, str]]] | None,
    headers: dict[str, str] | None, processes: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """Worker w takes every processes-th request from w (so the prompts still come in turn) and its share of the
    streams; all start when all are ready (spawned: each imports httpx first)."""
    ctx = multiprocessing.get_context("spawn")
    ready, out = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    workers = []
    for w in range(processes):
        share = streams // processes + (1 if w < streams % processes else 0)
        args = (url, share, range(w, requests, processes), max_tokens, prompts, headers, ready, go, out)
        workers.append(ctx.Process(target=_worker, args=args, daemon=True))
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            ready.get(timeout=120)
        go.set()
        return [out.get(timeout=3600) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()


def _worker(
    url: str, streams: int, indices: range, max_tokens: int, prompts: list[list[dict[str, str]]] | None,
    headers: dict[str, str] | None, ready: Any, go: Any, out: Any,
) -> None:  # fmt: skip
    ready.put(True)
    go.wait()
    try:
        part = asyncio.run(_client(url, streams, indices, max_tokens, prompts, headers))
    except Exception as exc:  # the parent must hear of it, not wait for ever
        now = time.monotonic()
        part = {"results": [], "failures": [_failure(exc)], "started": now, "ended": now,
                "cpu": 0.0}  # fmt: skip
    out.put(part)
