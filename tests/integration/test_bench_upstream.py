"""The bench upstream on the wire: a paced stream arrives one token per tick, spread over the answer's length.

Nothing about speed: the bound is the pacing itself (the upstream cannot send faster than its ticks), and the
reads are counted, not timed against a budget.
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from llmwatch.processes import Child
from tests.support import REPO, free_port

pytestmark = pytest.mark.integration

N, TICK_MS = 8, 100.0


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    ports = [free_port(), free_port()]
    log = Path(tmp_path_factory.mktemp("upstream")) / "upstream.log"
    child = Child([sys.executable, "-m", "bench.upstream", *(f"--port={p}" for p in ports)], log, cwd=REPO)
    try:
        for port in ports:
            child.wait_http(f"http://127.0.0.1:{port}/health", 15.0)
        yield ports
    finally:
        child.stop()


def _reads(port: int, body: dict[str, object]) -> list[tuple[float, bytes]]:
    """Send one request; every recv() of the answer with the time it returned, until the chunked body ends."""
    data = orjson.dumps(body)
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-length: {len(data)}\r\n\r\n".encode()
    reads: list[tuple[float, bytes]] = []
    deadline = time.monotonic() + 30.0
    with socket.create_connection(("127.0.0.1", port), timeout=30.0) as sock:
        sock.sendall(head + data)
        while not b"".join(r for _, r in reads).endswith((b"0\r\n\r\n", b"}")):
            assert time.monotonic() < deadline, "waited 30 s for the end of the answer"
            chunk = sock.recv(65536)
            assert chunk, "the upstream closed the connection mid-answer"
            reads.append((time.monotonic(), chunk))
    return reads


def _chat(**extra: object) -> dict[str, object]:
    return {"model": "m", "max_tokens": N, "stream": True, "stream_options": {"include_usage": True}, **extra}


@pytest.mark.parametrize("engine", [0, 1])
def test_a_paced_stream_arrives_one_token_per_tick(ports: list[int], engine: int) -> None:
    reads = _reads(ports[engine], _chat(bench_tick_ms=TICK_MS))
    with_events = [(t, r.count(b"data: ")) for t, r in reads if b"data: " in r]
    assert sum(n for _, n in with_events) == N + 3, "role chunk, N tokens, usage chunk, [DONE]"
    # N ticks: the first carries the role chunk with the first token, the last the usage chunk and [DONE].
    span = with_events[-1][0] - with_events[0][0]
    assert span >= (N - 1) * TICK_MS / 1000 * 0.9, f"{N} tokens at {TICK_MS} ms came in {span:.3f} s"
    # One token per read, as from an engine's decode step (a busy test machine may merge a few reads).
    assert len(with_events) >= N // 2, with_events
    assert statistics.median(n for _, n in with_events) == 1, with_events


def test_an_unpaced_stream_is_the_same_answer(ports: list[int]) -> None:
    paced = b"".join(r for _, r in _reads(ports[0], _chat(bench_tick_ms=1)))
    unpaced = b"".join(r for _, r in _reads(ports[0], _chat()))
    assert paced.count(b"data: ") == unpaced.count(b"data: ") == N + 3
    assert paced.count(b'"delta":{"reasoning"') == unpaced.count(b'"delta":{"reasoning"') == N // 2


def test_a_bad_tick_is_a_400_in_the_openai_envelope(ports: list[int]) -> None:
    answer = b"".join(r for _, r in _reads(ports[0], _chat(bench_tick_ms=0)))
    assert answer.startswith(b"HTTP/1.1 400 ")
    error = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert "bench_tick_ms" in error["message"] and error["code"] == 400
