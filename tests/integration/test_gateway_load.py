"""1,000 concurrent mixed requests with upstream faults: exactly 1,000 log lines, and the counters agree."""

from __future__ import annotations

import asyncio
import collections
import random
from pathlib import Path

import aiohttp
import pytest

from tests.support import GatewayFactory, free_port, running, sim_cmd, total

pytestmark = pytest.mark.integration

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
N = 1000


async def _one(session: aiohttp.ClientSession, url: str, i: int) -> int:
    rng = random.Random(i)
    body = {"model": MODEL, "max_tokens": rng.choice([4, 16, 32]), "stream": rng.random() < 0.6,
            "messages": [{"role": "user", "content": f"question {i}: what is {i} + {i}?"}]}  # fmt: skip
    if i % 97 == 0:
        body.pop("model")  # a client error the gateway answers itself
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        await resp.read()
        return resp.status


async def _storm(url: str) -> collections.Counter[int]:
    connector = aiohttp.TCPConnector(limit=N)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        statuses = await asyncio.gather(*(_one(session, url, i) for i in range(N)))
    return collections.Counter(statuses)


def test_thousand_concurrent_requests_with_faults(start_gateway: GatewayFactory, tmp_path: Path) -> None:
    port = free_port()
    sim = sim_cmd(
        port, "--gpu-profile", "h100", "--reasoning-parser", "deepseek_r1", "--max-num-seqs", "256", "--seed", "7",
        "--error-rate", "0.1", "--error-status", "503", "--drop-rate", "0.05", "--empty-rate", "0.05",
    )  # fmt: skip
    with running(sim, tmp_path / "sim.log", f"http://127.0.0.1:{port}/health"):
        gw = start_gateway(f"http://127.0.0.1:{port}")
        client_statuses = asyncio.run(_storm(gw.url))
        lines = gw.wait_lines(N, timeout=30)
        metrics = gw.metrics()
    assert len(lines) == N, "exactly one line per request"
    assert len({line["request_id"] for line in lines}) == N
    logged = collections.Counter(line["status"] for line in lines)
    counted: collections.Counter[int] = collections.Counter()
    for (name, lab), value in metrics.items():
        if name == "llmwatch_requests_total":
            counted[int(dict(lab)["status"])] += int(value)
    assert sum(counted.values()) == N
    assert +counted == logged  # (+ drops the series the gateway starts at 0)
    # Every fault showed up, and each is told apart.
    assert logged[503] > 0 and logged[400] == len(range(0, N, 97))
    broken = collections.Counter(line["error_type"] for line in lines if line["status"] == 502)
    assert broken["upstream_stream_broken"] > 0, "streams dropped mid-way are logged as upstream_stream_broken"
    assert set(broken) <= {"upstream_stream_broken", "upstream_disconnect"}
    # What the client saw agrees with the log, except that broken streams had already sent a 200 header.
    assert client_statuses[503] == logged[503] and client_statuses[400] == logged[400]
    assert client_statuses[502] == broken["upstream_disconnect"]
    assert client_statuses[200] == logged[200] + broken["upstream_stream_broken"]
    empties = sum(line["empty_response"] for line in lines)
    assert empties > 0 and total(metrics, "llmwatch_empty_responses_total") == empties
    assert total(metrics, "llmwatch_tokens_total", type="completion") == sum(
        line["completion_tokens"] or 0 for line in lines
    )
    assert total(metrics, "llmwatch_requests_in_flight") == 0
