"""The gateway's HTTP/1.1 client for its engines (gateway/engine_link.py, engine_answer.py), against scripted engines on
127.0.0.1: keep-alive reuse, the pool's limit, the three ways a body ends, the read timeout, backpressure and
cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop

from llmwatch.gateway.engine_answer import Answer, BodyTooLarge
from llmwatch.gateway.engine_link import EngineLink
from llmwatch.gateway.link_errors import LinkClosed, LinkTimeout, LinkUnreachable
from tests.support import free_port

# pytest-asyncio 1.x warns that overriding event_loop_policy is deprecated (its replacement is a conftest-wide hook).
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy"')]


@pytest.fixture(params=["asyncio", "uvloop"], autouse=True)
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Each test on the standard loop and on uvloop, the gateway's."""
    return uvloop.EventLoopPolicy() if request.param == "uvloop" else asyncio.DefaultEventLoopPolicy()


Handler = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Engine:
    """A scripted engine: `handler` answers each request (its head and body read); it counts connections."""

    handler: Handler
    url: str = ""
    connections: int = 0
    open_now: int = 0
    max_open: int = 0
    heads: list[bytes] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                await self.handler(head, reader, writer)
                if writer.is_closing():
                    return
        finally:
            self.open_now -= 1
            self.closed.set()
            writer.close()


@contextlib.asynccontextmanager
async def engine(handler: Handler) -> AsyncIterator[Engine]:
    eng = Engine(handler)
    port = free_port()
    server = await asyncio.start_server(eng.serve, "127.0.0.1", port)
    eng.url = f"http://127.0.0.1:{port}"
    try:
        yield eng
    finally:
        server.close()


async def _until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``check`` until it holds, within ``seconds`` (then fail)."""
    for _ in range(int(seconds / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def _link(url: str, *, max_connections: int = 8, read_timeout: float = 5.0) -> EngineLink:
    return EngineLink(url, max_connections, connect_timeout=2.0, read_timeout=read_timeout)


async def _get(link: EngineLink, path: str = "/x") -> tuple[Answer, bytes]:
    answer = await link.send("GET", path, [], b"")
    try:
        return answer, await answer.read_body(1 << 20)
    finally:
        link.release(answer)


async def _ok(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    await writer.drain()


def _chunked(events: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"


async def test_two_sequential_requests_share_one_connection() -> None:
    async with engine(_ok) as eng:
        link = _link(eng.url)
        for _ in range(2):
            answer, body = await _get(link)
            assert (answer.status, answer.content_type, body) == (200, b"application/json", b"{}")
        assert eng.connections == 1
        assert (link.open_connections, link.idle_connections) == (1, 1)
        await link.close()


async def test_the_request_on_the_wire_is_as_given_plus_host_and_length() -> None:
    async with engine(_ok) as eng:
        link = _link(eng.url + "/prefix")
        answer = await link.send("POST", "/prefix/v1/a%20b?x=%2F", [("X-Request-Id", "r1")], b'{"a":1}')
        await answer.read_body(100)
        link.release(answer)
        await _get(link, "/v1/models")
        port = eng.url.rsplit(":", 1)[1]
        assert eng.heads[0] == (
            b"POST /prefix/v1/a%20b?x=%2F HTTP/1.1\r\nHost: 127.0.0.1:" + port.encode() + b"\r\n"
            b"X-Request-Id: r1\r\nContent-Length: 7\r\n\r\n"
        )
        assert b"content-length" not in eng.heads[1].lower(), "a GET without a body says no length"
        with pytest.raises(ValueError, match="line break"):
            await link.send("GET", "/", [("X-Evil", "a\r\nX-Injected: 1")], b"")
        await link.close()


def _answer_after(gate: asyncio.Event) -> Handler:
    """An engine handler that answers 200 `{}` once ``gate`` is set."""

    async def held(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await gate.wait()
        await _ok(head, reader, writer)

    return held


async def test_the_pool_opens_at_most_max_connections() -> None:
    gate = asyncio.Event()
    held = _answer_after(gate)

    async with engine(held) as eng:
        link = _link(eng.url, max_connections=2)
        tasks = [asyncio.create_task(_get(link)) for _ in range(5)]
        await _until(lambda: len(eng.heads) >= 2)
        await asyncio.sleep(0.1)
        assert (eng.connections, len(eng.heads)) == (2, 2), "three requests wait for a free connection"
        gate.set()
        results = await asyncio.gather(*tasks)
        assert [body for _, body in results] == [b"{}"] * 5
        assert eng.connections == 2 and eng.max_open == 2
        await link.close()


async def test_a_waiting_request_times_out_within_the_connect_timeout() -> None:
    gate = asyncio.Event()
    held = _answer_after(gate)

    async with engine(held) as eng:
        link = EngineLink(eng.url, 1, connect_timeout=0.2, read_timeout=5.0)
        first = asyncio.create_task(_get(link))
        await asyncio.sleep(0.05)
        with pytest.raises(LinkTimeout):
            await link.send("GET", "/", [], b"")
        gate.set()
        await first
        assert link.open_connections == 1
        await link.close()


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
async def test_each_body_framing_is_read_whole(framing: str) -> None:
    payload = b"data: 1\n\n" * 1000

    async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if framing == "content-length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload))
        elif framing == "chunked":
            pieces = [payload[i : i + 777] for i in range(0, len(payload), 777)]
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(pieces))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + payload)
            await writer.drain()
            writer.close()
            return
        await writer.drain()

    async with engine(answer) as eng:
        link = _link(eng.url)
        for _ in range(2):
            _, body = await _get(link)
            assert body == payload
        assert eng.connections == (2 if framing == "close" else 1), "only a body ended by a close is not reused"
        await link.close()


async def test_a_body_over_the_limit_stops_the_read_and_drops_the_connection() -> None:
    async def big(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):
                writer.write(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
                await writer.drain()

    async with engine(big) as eng:
        link = _link(eng.url)
        answer = await link.send("GET", "/", [], b"")
        with pytest.raises(BodyTooLarge):
            await answer.read_body(1 << 20)
        link.release(answer)
        assert link.open_connections == 0
        await asyncio.wait_for(eng.closed.wait(), 5)


def _sse_engine(events: int, every: float, stall_after: int | None = None) -> Handler:
    async def stream(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for i in range(events):
                if stall_after is not None and i == stall_after:
                    await reader.read()  # silent until the gateway's side closes
                    return
                e = b"data: %d\n\n" % i
                writer.write(b"%x\r\n%s\r\n" % (len(e), e))
                await writer.drain()
                await asyncio.sleep(every)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    return stream


async def _relay_all(link: EngineLink, write_now: Callable[[bytes], bool] | None = None) -> list[bytes]:
    got: list[bytes] = []

    def now(out: bytes) -> bool:
        got.append(out)
        return True

    async def send(out: bytes) -> None:
        got.append(out)

    answer = await link.send("POST", "/v1/chat/completions", [], b"{}")
    try:
        await answer.relay(lambda piece, now: piece, write_now or now, send)
    finally:
        link.release(answer)
    return got


async def test_a_stream_that_keeps_sending_outlives_the_read_timeout() -> None:
    async with engine(_sse_engine(events=15, every=0.05)) as eng:
        link = _link(eng.url, read_timeout=0.3)
        started = time.monotonic()
        got = await _relay_all(link)
        assert time.monotonic() - started > 0.6, "the stream lasted longer than two read timeouts"
        assert b"".join(got) == b"".join(b"data: %d\n\n" % i for i in range(15))
        assert link.idle_connections == 1
        await link.close()


async def test_silence_after_some_events_times_out_after_the_read_timeout() -> None:
    async with engine(_sse_engine(events=10, every=0.05, stall_after=5)) as eng:
        link = _link(eng.url, read_timeout=0.4)
        started = time.monotonic()
        with pytest.raises(LinkTimeout):
            await _relay_all(link)
        waited = time.monotonic() - started
        assert 0.4 + 0.2 <= waited < 2.0, f"timed out after {waited:.2f} s: the silence began after ~0.25 s"
        assert link.open_connections == 0
        await asyncio.wait_for(eng.closed.wait(), 5)


async def test_an_engine_that_never_answers_times_out() -> None:
    async def mute(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # silent until the gateway's side closes

    async with engine(mute) as eng:
        link = _link(eng.url, read_timeout=0.2)
        with pytest.raises(LinkTimeout):
            await link.send("GET", "/", [], b"")
        assert link.open_connections == 0
        await link.close()


async def test_a_client_that_stops_reading_pauses_the_engine_read() -> None:
    chunk = b"data: " + b"x" * 16_000 + b"\n\n"
    sent = 0
    blocked = asyncio.Event()

    async def flood(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(2000):  # 32 MB, far more than the sockets' buffers
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except TimeoutError:
                blocked.set()  # the gateway's side stopped reading
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    release = asyncio.Event()
    delivered: list[int] = []
    queued_peak = 0

    def slow_now(out: bytes) -> bool:
        return False  # the client's buffer is always full: everything goes through send

    async def send(out: bytes) -> None:
        nonlocal queued_peak
        queued_peak = max(queued_peak, len(out))
        await release.wait()
        delivered.append(len(out))

    async with engine(flood) as eng:
        link = _link(eng.url, read_timeout=0.3)
        answer = await link.send("GET", "/", [], b"")
        task = asyncio.create_task(answer.relay(lambda piece, now: piece, slow_now, send))
        await asyncio.wait_for(blocked.wait(), 10)
        await asyncio.sleep(0.6)  # past the read timeout: a paused read is the client's doing, not the engine's
        assert sent < 16_000_000, "the engine could not write much more than the socket buffers hold"
        assert not task.done()
        release.set()
        await asyncio.wait_for(task, 30)
        link.release(answer)
        assert sum(delivered) == 2000 * len(chunk)
        assert queued_peak <= 1 << 20, f"at most one read's worth is held ({queued_peak} bytes)"
        assert link.idle_connections == 1
        await link.close()


async def test_cancelling_the_relay_closes_the_connection() -> None:
    async with engine(_sse_engine(events=1000, every=0.01)) as eng:
        link = _link(eng.url)
        answer = await link.send("GET", "/", [], b"")

        async def relay() -> None:
            try:
                await answer.relay(lambda piece, now: piece, lambda out: True, _never)
            finally:
                link.release(answer)  # as relay.py does

        task = asyncio.create_task(relay())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (link.open_connections, link.idle_connections) == (0, 0)
        assert answer.closed and answer._timer is None, "no read-timeout timer left behind"
        await asyncio.wait_for(eng.closed.wait(), 5)


async def test_what_feed_raises_reaches_the_relaying_task() -> None:
    class Boom(Exception):
        pass

    def feed(piece: bytes, now: float) -> bytes:
        raise Boom

    async with engine(_sse_engine(events=5, every=0.01)) as eng:
        link = _link(eng.url)
        answer = await link.send("GET", "/", [], b"")
        with pytest.raises(Boom):
            await answer.relay(feed, lambda out: True, _never)
        link.release(answer)
        assert link.open_connections == 0


async def _never(out: bytes) -> None:
    raise AssertionError("not called")


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: zz\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"",
    ],
)
async def test_a_broken_engine_is_a_closed_link(reply: bytes) -> None:
    async def broken(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(reply)
        await writer.drain()
        writer.close()

    async with engine(broken) as eng:
        link = _link(eng.url)
        with pytest.raises(LinkClosed):
            answer = await link.send("POST", "/", [], b"")
            try:
                await answer.read_body(1 << 20)
            finally:
                link.release(answer)
        assert link.open_connections == 0


async def test_an_engine_that_is_not_there_is_unreachable() -> None:
    link = _link(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(LinkUnreachable, match="refused"):
        await link.send("GET", "/", [], b"")
    assert link.open_connections == 0


async def test_an_idle_connection_the_engine_closed_is_not_reused() -> None:
    async def once(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _ok(head, reader, writer)
        writer.close()  # the engine's keep-alive ran out

    async with engine(once) as eng:
        link = _link(eng.url)
        await _get(link)
        await _until(lambda: link.open_connections == 0)
        assert (link.open_connections, link.idle_connections) == (0, 0)
        _, body = await _get(link)
        assert body == b"{}" and eng.connections == 2
        await link.close()


async def test_idle_connections_are_closed_after_the_idle_time() -> None:
    async with engine(_ok) as eng:
        link = EngineLink(eng.url, 4, connect_timeout=2.0, read_timeout=5.0, idle_seconds=0.2)
        await _get(link)
        assert link.idle_connections == 1
        await asyncio.wait_for(eng.closed.wait(), 5)
        assert (link.open_connections, link.idle_connections) == (0, 0)
        await link.close()


async def test_each_piece_is_fed_with_the_time_it_arrived() -> None:
    async with engine(_sse_engine(events=5, every=0.05)) as eng:
        link = _link(eng.url)
        answer = await link.send("GET", "/", [], b"")
        await asyncio.sleep(0.2)  # the first event arrived with the head, before the body is asked for
        asked = time.perf_counter()
        times: list[float] = []

        def feed(piece: bytes, now: float) -> bytes:
            times.append(now)
            return b""

        await answer.relay(feed, lambda out: True, _never)
        link.release(answer)
        assert len(times) == 5 and times == sorted(times)
        assert times[0] < asked - 0.1, "an early piece keeps its arrival time, not the time it was fed"
        assert times[-1] - times[0] > 0.15, "the later ones arrived 50 ms apart"


async def test_an_answer_to_head_has_no_body() -> None:
    async def head_ok(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n")
        await writer.drain()

    async with engine(head_ok) as eng:
        link = _link(eng.url, read_timeout=2.0)
        answer = await link.send("HEAD", "/v1/models", [], b"")
        body = await asyncio.wait_for(answer.read_body(1 << 20), 1.0)
        link.release(answer)
        assert (answer.status, answer.content_length, body) == (200, 99999999, b"")
        assert link.open_connections == 0, "not reused: the parser could not be told there was no body"


@pytest.mark.parametrize("seed", range(4))
async def test_any_split_of_the_answer_and_any_client_pace_relay_the_body_in_order(seed: int) -> None:
    rng = random.Random(seed)
    events = [b"data: %d %s\n\n" % (i, b"x" * rng.randrange(0, 3000)) for i in range(300)]
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    wire = head + _chunked(events)

    async def split(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pos = 0
        while pos < len(wire):
            step = rng.choice((1, 7, 100, 1500, 20_000))
            writer.write(wire[pos : pos + step])
            pos += step
            await writer.drain()
            if rng.random() < 0.05:
                await asyncio.sleep(0.002)

    got: list[bytes] = []

    def write_now(out: bytes) -> bool:
        if rng.random() < 0.2:
            return False  # the client's buffer is full this time
        got.append(out)
        return True

    async def send(out: bytes) -> None:
        await asyncio.sleep(0.001 * rng.random())
        got.append(out)

    async with engine(split) as eng:
        link = _link(eng.url)
        for _ in range(2):
            got.clear()
            answer = await link.send("GET", "/", [], b"")
            await answer.relay(lambda piece, now: piece, write_now, send)
            link.release(answer)
            assert b"".join(got) == b"".join(events)
        assert eng.connections == 1
        await link.close()


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("trusted", [True, False])
async def test_https_engines_are_verified(
    tls_files: tuple[Path, Path], trusted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tls_files
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what an operator's CA bundle would do
    eng = Engine(_ok)
    port = free_port()
    server = await asyncio.start_server(eng.serve, "127.0.0.1", port, ssl=server_tls)
    try:
        link = _link(f"https://127.0.0.1:{port}")
        if trusted:
            for _ in range(2):
                answer, body = await _get(link)
                assert (answer.status, body) == (200, b"{}")
            assert eng.connections == 1
        else:
            with pytest.raises(LinkUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
                await link.send("GET", "/", [], b"")
        await link.close()
    finally:
        server.close()


async def test_an_interim_answer_is_skipped_for_the_final_one() -> None:
    async def hints(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
        await writer.drain()
        await _ok(head, reader, writer)

    async with engine(hints) as eng:
        link = _link(eng.url)
        for _ in range(2):
            answer, body = await _get(link)
            assert (answer.status, answer.headers[0][0].lower(), body) == (200, b"content-type", b"{}")
        assert eng.connections == 1
        await link.close()


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_kept_alive_connection_closed_under_a_request_is_retried_once(method: str) -> None:
    answered: dict[int, int] = {}

    async def closes_on_second(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = id(writer)
        answered[conn] = answered.get(conn, 0) + 1
        if len(answered) == 1 and answered[conn] == 2:
            writer.close()  # the engine's keep-alive ran out just as the request came: nothing answered
            return
        await _ok(head, reader, writer)

    async with engine(closes_on_second) as eng:
        link = _link(eng.url)
        await _get(link)
        answer_or_error: Answer | LinkClosed
        try:
            answer_or_error = await link.send(method, "/", [], b"{}" if method == "POST" else b"")
        except LinkClosed as exc:
            answer_or_error = exc
        # Not one byte came back: the engine never took the request up, so a POST is resent too.
        assert isinstance(answer_or_error, Answer) and answer_or_error.status == 200
        assert await answer_or_error.read_body(100) == b"{}"
        link.release(answer_or_error)
        assert eng.connections == 2, "resent once, on a fresh connection"
        await link.close()


async def test_a_connection_is_not_kept_after_an_error_answer() -> None:
    """An engine that refused a request may not have read all of it: the next request gets a fresh connection."""

    async def refuses_first(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if b"/bad" in head:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
            return
        await _ok(head, reader, writer)

    async with engine(refuses_first) as eng:
        link = _link(eng.url)
        answer, _ = await _get(link, "/bad")
        assert answer.status == 400
        answer, _ = await _get(link, "/good")
        assert answer.status == 200 and eng.connections == 2
        answer, _ = await _get(link, "/good")
        assert eng.connections == 2, "a 200 answer's connection is kept"
        await link.close()


async def test_a_request_is_resent_at_most_once_and_never_after_bytes_of_an_answer() -> None:
    async def cuts_mid_head(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if b"/cut" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")  # some bytes, then gone: the engine took the request up
            await writer.drain()
            writer.close()
            return
        await _ok(head, reader, writer)

    async with engine(cuts_mid_head) as eng:
        link = _link(eng.url)
        await _get(link)
        with pytest.raises(LinkClosed):
            await link.send("POST", "/cut", [], b"{}")
        assert eng.connections == 1, "bytes of an answer came back: not resent"
        await link.close()

    async def always_drops(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with engine(always_drops) as eng:
        link = _link(eng.url)
        with pytest.raises(LinkClosed):
            await link.send("GET", "/", [], b"")
        assert eng.connections == 1, "a fresh connection that fails is not resent"
        await link.close()
