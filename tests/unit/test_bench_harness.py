"""The bench harness's own parts: the upstream's decode-step ticker, the load generator's stream check, the GPU
check's engine front, and the baseline's dependencies.

The ticker is driven by a fake loop (its clock and timers), so the tests say exactly which tick wrote what. The
stream check is fed the bench upstream's real wire format (bench.vllm_wire), split every way.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from bench import vllm_wire
from bench.gpu_check.sweep import front_processes
from bench.paths import missing_requirements, not_installed
from bench.stream_check import StreamCheck
from bench.upstream import Ticker, _Conn, _Paced, _tick_ms
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.unit

N = 6  # tokens per test stream
EVENTS = vllm_wire.stream_events(1_700_000_000, "m", N)  # role chunk + N token chunks, id placeholder in each
USAGE = vllm_wire.usage_event("chatcmpl-x", 1_700_000_000, "m", 12, N)
STREAM = b"".join(e.replace(vllm_wire.ID_MARK, b"chatcmpl-x") for e in EVENTS) + USAGE + vllm_wire.DONE


# --- the upstream's ticker ------------------------------------------------------------------------------------------


class FakeLoop:
    """The two loop methods a Ticker uses: a settable clock, and timers that the test fires by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        self.timers.append((when, callback))

    def fire(self, at: float | None = None) -> float:
        """Run the one pending timer (at its due time, or late at ``at``); returns when it was due."""
        assert len(self.timers) == 1, f"one timer per ticker, whatever the streams: {self.timers}"
        when, callback = self.timers.pop()
        self.now = when if at is None else at
        callback()
        return when


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False


class FakeConn:
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.paused = False


class FakeDone:
    def __init__(self) -> None:
        self.result = False

    def done(self) -> bool:
        return self.result

    def set_result(self, _: None) -> None:
        self.result = True


def _stream(conn: FakeConn) -> tuple[_Paced, FakeDone]:
    done = FakeDone()
    paced = _Paced(cast(_Conn, conn), EVENTS, b"chatcmpl-x", USAGE + vllm_wire.DONE, cast(Any, done))
    return paced, done


def _events_in(writes: list[bytes]) -> list[int]:
    return [w.count(b"data: ") for w in writes]


def test_one_timer_writes_one_event_per_stream_per_tick() -> None:
    loop = FakeLoop()
    ticker = Ticker(cast(asyncio.AbstractEventLoop, loop), 0.010)
    conns = [FakeConn() for _ in range(3)]
    dones = []
    for conn in conns:
        paced, done = _stream(conn)
        ticker.add(paced)
        dones.append(done)
    ticks = 0
    while loop.timers:
        loop.fire()
        ticks += 1
    # N ticks for N tokens, for all three streams at once: the role chunk rides with the first token, the usage chunk
    # and [DONE] with the last, as an engine's first and last outputs carry them.
    assert ticks == N and ticker.ticks == N
    for conn, done in zip(conns, dones, strict=True):
        assert _events_in(conn.transport.writes) == [2, *[1] * (N - 2), 3]
        assert conn.transport.writes[-1].endswith(b"0\r\n\r\n")  # the chunked body's end
        assert done.result
    assert not ticker.streams and ticker.due is None, "an idle ticker sleeps"


def test_the_first_event_waits_for_the_next_tick() -> None:
    loop = FakeLoop()
    loop.now = 5.0
    ticker = Ticker(cast(asyncio.AbstractEventLoop, loop), 0.010)
    conn = FakeConn()
    ticker.add(_stream(conn)[0])
    assert conn.transport.writes == []
    assert loop.timers[0][0] == pytest.approx(5.010)


def test_ticks_are_drift_corrected_and_do_not_burst_to_catch_up() -> None:
    loop = FakeLoop()
    ticker = Ticker(cast(asyncio.AbstractEventLoop, loop), 0.010)
    ticker.add(_stream(FakeConn())[0])
    assert loop.fire(at=0.0123) == pytest.approx(0.010)  # 2.3 ms late...
    assert loop.timers[0][0] == pytest.approx(0.020)  # ...the next tick keeps the schedule
    assert loop.fire(at=0.035) == pytest.approx(0.020)  # more than a tick late...
    assert loop.timers[0][0] == pytest.approx(0.035)  # ...next one now, once, not two at once to catch up
    loop.fire()
    assert loop.timers[0][0] == pytest.approx(0.045)


def test_a_paused_stream_skips_ticks_and_the_others_go_on() -> None:
    loop = FakeLoop()
    ticker = Ticker(cast(asyncio.AbstractEventLoop, loop), 0.010)
    slow, fast = FakeConn(), FakeConn()
    ticker.add(_stream(slow)[0])
    ticker.add(_stream(fast)[0])
    slow.paused = True
    loop.fire()
    loop.fire()
    assert slow.transport.writes == [] and len(fast.transport.writes) == 2
    slow.paused = False
    while loop.timers:
        loop.fire()
    assert _events_in(slow.transport.writes) == [2, *[1] * (N - 2), 3], "resumed where it stopped, nothing lost"
    assert ticker.ticks == N + 2


def test_a_gone_client_ends_its_stream() -> None:
    loop = FakeLoop()
    ticker = Ticker(cast(asyncio.AbstractEventLoop, loop), 0.010)
    conn = FakeConn()
    paced, done = _stream(conn)
    ticker.add(paced)
    loop.fire()
    conn.transport.is_closing = lambda: True  # type: ignore[method-assign]
    loop.fire()
    assert done.result and not loop.timers and len(conn.transport.writes) == 1


@pytest.mark.parametrize("value", [0, -5, 1001, "10", True, [10]])
def test_a_bad_tick_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="bench_tick_ms"):
        _tick_ms({"bench_tick_ms": value})


def test_no_tick_is_unpaced() -> None:
    assert _tick_ms({}) is None and _tick_ms({"bench_tick_ms": None}) is None and _tick_ms({"bench_tick_ms": 5}) == 5.0


# --- the load generator's stream check ------------------------------------------------------------------------------


def _check(data: bytes, cuts: Sequence[int] = (), expected: int = N) -> tuple[str | None, StreamCheck]:
    check = StreamCheck(expected, 0.0)
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    for a, b in itertools.pairwise(bounds):
        why = check.feed(data[a:b])
        if why is not None:
            return why, check
    return check.finish(), check


def test_a_complete_stream_passes_with_its_counts() -> None:
    why, check = _check(STREAM)
    assert why is None
    assert (check.tokens, check.events, check.done, check.usage) == (N, N + 3, True, True)
    assert check.ttft is not None


@settings(max_examples=300, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40), crlf=st.booleans())
def test_any_split_gives_the_same_verdict(cuts: list[int], crlf: bool) -> None:
    data = STREAM.replace(b"\n", b"\r\n") if crlf else STREAM
    why, check = _check(data, cuts)
    assert why is None and (check.tokens, check.events) == (N, N + 3)


def test_every_single_split_point() -> None:
    for cut in range(1, len(STREAM)):
        why, check = _check(STREAM, [cut])
        assert why is None and check.tokens == N, cut


def test_a_stream_without_done_fails() -> None:
    why, _ = _check(STREAM.removesuffix(vllm_wire.DONE))
    assert why == "stream ended without data: [DONE]"


def test_a_stream_without_usage_fails() -> None:
    why, _ = _check(STREAM.replace(USAGE, b""))
    assert why is not None and "no usage chunk" in why


def test_a_missing_token_chunk_fails() -> None:
    third = EVENTS[3].replace(vllm_wire.ID_MARK, b"chatcmpl-x")
    why, _ = _check(STREAM.replace(third, b"", 1))
    assert why == f"streamed {N - 1} token chunks, expected {N}"


def test_an_extra_token_chunk_fails() -> None:
    why, _ = _check(STREAM, expected=N - 1)
    assert why == f"streamed {N} token chunks, expected {N - 1}"


def test_an_empty_delta_after_the_first_token_is_not_a_token() -> None:
    """The byte scan's fast path must tell `"content":""` from a token, as the JSON check does."""
    last = EVENTS[-1].replace(vllm_wire.ID_MARK, b"chatcmpl-x")
    emptied = re.sub(rb'"delta":\{"content":"[^"]+"\}', b'"delta":{"content":""}', last)
    assert emptied != last
    why, _ = _check(STREAM.replace(last, emptied, 1))
    assert why == f"streamed {N - 1} token chunks, expected {N}"


def test_an_error_event_fails_at_once() -> None:
    error = b'data: {"error":{"message":"engine died","type":"InternalServerError","code":500}}\n\n'
    first = EVENTS[1].replace(vllm_wire.ID_MARK, b"chatcmpl-x")
    broken = STREAM.replace(first, first + error, 1)
    why, _ = _check(broken)
    assert why is not None and why.startswith("error event")


def test_ttft_is_taken_at_the_first_text_not_the_role_chunk() -> None:
    role = EVENTS[0].replace(vllm_wire.ID_MARK, b"chatcmpl-x")
    check = StreamCheck(N, 0.0)
    assert check.feed(role) is None and check.ttft is None and check.events == 1
    assert check.feed(STREAM[len(role) :]) is None and check.ttft is not None


# --- the GPU check's engine front -----------------------------------------------------------------------------------


def test_the_engine_front_is_vllms_named_api_servers_else_the_engine_itself() -> None:
    """vLLM's titles as setproctitle leaves them in /proc/<pid>/cmdline; a launcher with no named child is itself."""
    script = " ".join(f"(exec -a VLLM::{name} sleep 30) &" for name in ("APIServer_0", "APIServer_1", "EngineCore"))
    launcher = subprocess.Popen(["bash", "-c", script + " wait"])
    alone = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while len(found := front_processes(launcher.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        titles = sorted(Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0] for p in found)
        assert titles == [b"VLLM::APIServer_0", b"VLLM::APIServer_1"]
        assert front_processes(alone.pid) == [alone.pid]
    finally:
        subprocess.run(["pkill", "-P", str(launcher.pid)], check=False)
        for proc in (launcher, alone):
            proc.kill()
            proc.wait()


# --- the benchmark's baseline ---------------------------------------------------------------------------------------


def test_a_baseline_names_the_dependencies_it_lacks_here() -> None:
    """`--baseline REV` stops with the pip command for what REV's gateway needs and this environment lacks, instead
    of a gateway that dies at import; today's dependencies are all installed (make install)."""
    assert missing_requirements("HEAD") == []
    asked = ["orjson>=3", "llmwatch-surely-absent>=1.0", "llmwatch-other-python>=1; python_version < '3'"]
    assert not_installed(asked) == ["llmwatch-surely-absent>=1.0"]
