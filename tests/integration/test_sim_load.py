"""Engine behaviour seen from clients: queueing beyond --max-num-seqs, and preemption when KV runs out."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, running, sim_cmd, wait_until

pytestmark = pytest.mark.integration
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


async def _ttft(client: httpx.AsyncClient, url: str, i: int, max_tokens: int) -> tuple[float, str]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"question {i}"}], "max_tokens": max_tokens,
            "stream": True}  # fmt: skip
    start = time.monotonic()
    first = 0.0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        last = ""
        async for line in response.aiter_lines():
            if line.startswith("data: ") and not first:
                first = time.monotonic() - start
            if line.startswith("data: "):
                last = line
    return first, last


async def _burst(url: str, n: int, max_tokens: int) -> list[tuple[float, str]]:
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(*(_ttft(client, url, i, max_tokens) for i in range(n)))


def _sim(port: int, *extra: str) -> list[str]:
    return sim_cmd(port, "--warmup-requests", "0", "--reasoning-parser", "deepseek_r1", *extra)


def test_concurrency_above_max_num_seqs_queues_and_raises_ttft(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(_sim(port, "--gpu-profile", "rtx3060", "--max-num-seqs", "2"), tmp_path / "sim.log", f"{url}/health"):
        idle = asyncio.run(_burst(url, 1, 30))[0][0]
        assert idle < 0.8  # idle TTFT well under 800 ms

        async def burst_and_watch() -> tuple[list[tuple[float, str]], float]:
            task = asyncio.create_task(_burst(url, 6, 30))
            waiting = await asyncio.to_thread(
                wait_until, lambda: _metric(url, "vllm:num_requests_waiting") or None, 5, "requests waiting"
            )
            return await task, waiting

        results, waiting = asyncio.run(burst_and_watch())
        assert waiting >= 1
        ttfts = sorted(t for t, _ in results)
        assert ttfts[-1] > ttfts[0] + 0.2  # the third wave waited for two waves of 30 tokens at ~100 tok/s
        assert all(last == "data: [DONE]" for _, last in results)
        assert _metric(url, "vllm:num_requests_waiting") == 0


def test_exhausted_kv_cache_preempts(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # 8 blocks of 16 tokens; four requests of ~10 prompt + 60 output tokens need ~5 blocks each
    args = _sim(port, "--gpu-profile", "h100", "--num-gpu-blocks-override", "8", "--max-num-seqs", "4")
    with running(args, tmp_path / "sim.log", f"{url}/health"):
        results = asyncio.run(_burst(url, 4, 60))
        assert all(last == "data: [DONE]" for _, last in results)
        assert _metric(url, "vllm:num_preemptions_total") > 0
        assert _metric(url, "vllm:kv_cache_usage_perc") == 0
