"""The gateway under attack: each reproduction from the hostile read-through, as it was written, against a gateway
in front of an engine that records what reaches it and misbehaves on request (tests/fakes/hostile_engine.py).

In-process where the ASGI app is enough; a real `llmwatch gateway` process where the bug lives in the socket layer
(uvicorn's protocol: forwarding headers, pipelining, heads, keep-alive).
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.fakes.hostile_engine import COMPLETION_TOKENS, PROMPT_TOKENS, HostileEngine
from tests.support import REPO, GatewayFactory, free_port, total, wait_until
from tests.support.inprocess import MODEL, InProcessGateway, LoopThread, gateway, serving

pytestmark = pytest.mark.integration

SCHEMA = json.loads((REPO / "services/llmwatch/gateway/access-log.schema.json").read_text())
POST = "/v1/chat/completions"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "2+2?"}], "max_tokens": 50}
# What a vLLM needs, and nothing else: what the gateway's allow-list sends (engine_link.py adds Host, Content-Length).
ENGINE_HEADERS = {"host", "content-length", "content-type", "accept", "user-agent", "x-request-id", "traceparent",
                  "tracestate"}  # fmt: skip


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def engine(loop: LoopThread) -> Iterator[tuple[HostileEngine, str]]:
    """The hostile engine, served from its own loop thread (so a gateway process or the test's loop can use it)."""
    eng = HostileEngine()
    manager = serving(eng.app())
    url = loop.run(manager.__aenter__())
    yield eng, url
    loop.run(manager.__aexit__(None, None, None))


@pytest.fixture
async def inproc(engine: tuple[HostileEngine, str]) -> AsyncIterator[InProcessGateway]:
    async with gateway(engine[1]) as gw:
        yield gw


def _one_line(gw: InProcessGateway) -> dict[str, Any]:
    lines = gw.new_lines()
    assert len(lines) == 1, lines
    jsonschema.validate(lines[0], SCHEMA)
    return lines[0]


def _rss_peak_kb(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1])
    raise AssertionError("no VmHWM")


# -- 1. A client can hide its tokens ------------------------------------------------------------------------------
async def test_1_non_boolean_stream_flags_are_refused_before_the_engine(
    engine: tuple[HostileEngine, str], inproc: InProcessGateway
) -> None:
    eng, _ = engine
    gw = inproc
    for body, param in [
        ({**CHAT, "stream": "true"}, "stream"),
        ({**CHAT, "stream": 1}, "stream"),
        ({**CHAT, "stream": True, "stream_options": {"include_usage": "false"}}, "stream_options.include_usage"),
        ({**CHAT, "stream": True, "stream_options": "yes"}, "stream_options"),
    ]:
        resp = await gw.client.post(POST, json=body)
        assert resp.status_code == 400, (body, resp.text)
        error = resp.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_request", param), error
        line = _one_line(gw)
        assert (line["status"], line["error_type"]) == (400, "invalid_request")
    assert eng.generations() == [], "the engine saw none of them"
    # A real boolean false for include_usage is the client's right; the gateway still counts the tokens.
    resp = await gw.client.post(POST, json={**CHAT, "stream": True, "stream_options": {"include_usage": False}})
    assert resp.status_code == 200 and '"usage"' not in resp.text
    line = _one_line(gw)
    assert (line["stream"], line["prompt_tokens"], line["completion_tokens"]) == (True, PROMPT_TOKENS,
                                                                                   COMPLETION_TOKENS)  # fmt: skip
    assert gw.sample("llmwatch_tokens_total", type="prompt") == PROMPT_TOKENS


# -- 2. Identity fields can be forged -----------------------------------------------------------------------------
async def test_2a_only_a_trusted_forwarder_names_the_user(engine: tuple[HostileEngine, str], tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# name=key [forward-user]\nalice=sk-alice\nopen-webui=sk-owui forward-user\n")
    async with gateway(engine[1], api_keys=keys) as gw:
        bob = {"X-OpenWebUI-User-Name": "bob"}
        for key, user in [("sk-alice", "alice"), ("sk-owui", "bob")]:
            resp = await gw.client.post(POST, json=CHAT, headers={"Authorization": f"Bearer {key}", **bob})
            assert resp.status_code == 200, resp.text
            assert _one_line(gw)["user"] == user
        # A forwarder that names nobody is logged under its own name.
        await gw.client.post(POST, json=CHAT, headers={"Authorization": "Bearer sk-owui"})
        assert _one_line(gw)["user"] == "open-webui"


async def test_2a_without_keys_no_header_names_a_user(inproc: InProcessGateway) -> None:
    resp = await inproc.client.post(POST, json=CHAT, headers={"X-OpenWebUI-User-Name": "bob"})
    assert resp.status_code == 200
    assert _one_line(inproc)["user"] is None


def test_2b_forwarding_headers_are_trusted_only_from_configured_proxies(
    start_gateway: GatewayFactory, engine: tuple[HostileEngine, str]
) -> None:
    forged = {"X-Forwarded-For": "203.0.113.9"}
    gw = start_gateway(engine[1])
    assert httpx.post(gw.url + POST, json=CHAT, headers=forged).status_code == 200
    assert gw.wait_lines(1)[-1]["client_ip"] == "127.0.0.1"
    trusting = start_gateway(engine[1], "--forwarded-allow-ips", "127.0.0.1")
    assert httpx.post(trusting.url + POST, json=CHAT, headers=forged).status_code == 200
    assert trusting.wait_lines(1)[-1]["client_ip"] == "203.0.113.9"


@pytest.mark.parametrize("upstream_key", [None, "engine-key"])
async def test_2c_3_the_engine_receives_exactly_the_allowed_headers(
    engine: tuple[HostileEngine, str], upstream_key: str | None
) -> None:
    eng, url = engine
    client_headers = {
        "Authorization": "Bearer client-key", "Cookie": "session=1", "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Host": "evil", "Forwarded": "for=6.6.6.6", "X-OpenWebUI-User-Name": "bob",
        "X-Sim-Fault": "error", "Connection": "keep-alive, X-Hop", "X-Hop": "1", "Accept-Encoding": "gzip",
        "Accept": "application/json", "User-Agent": "curl/8", "Content-Type": "application/json",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "v=1",
        "Proxy-Authorization": "Basic x", "X-Llmwatch-Kind": "chat",
    }  # fmt: skip
    async with gateway(url, upstream_api_key=upstream_key) as gw:
        for path, method, body in [(POST, "POST", CHAT), ("/v1/models", "GET", None)]:
            eng.received.clear()
            resp = await gw.client.request(method, path, json=body, headers=client_headers)
            assert resp.status_code == 200, resp.text
            [seen] = [r for r in eng.received if r.path == path]
            names = {name.lower() for name, _ in seen.headers}
            expected = ENGINE_HEADERS | ({"authorization"} if upstream_key else set())
            if method == "GET":
                expected -= {"content-length"}  # no body; the content type is the client's own
            assert names == expected, (path, names ^ expected)
            values = {name.lower(): value for name, value in seen.headers}
            if upstream_key:
                assert values["authorization"] == "Bearer engine-key"
            assert values["x-request-id"] == resp.headers["x-request-id"]
            # 2d: the engine's cookies and own headers stay with the gateway.
            assert set(resp.headers) <= {"content-type", "content-length", "x-request-id"}, resp.headers


# -- 2e. The management surface --------------------------------------------------------------------------------
def test_2e_management_routes_leave_the_api_port_and_keys_come_before_routes(
    start_gateway: GatewayFactory, engine: tuple[HostileEngine, str], tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("alice=sk-alice\n")
    port = free_port()
    gw = start_gateway(engine[1], "--api-keys", str(keys), "--metrics-port", str(port))
    for path in ("/metrics", "/readyz", "/docs", "/openapi.json", "/tokenize", "/v1/nope"):
        resp = httpx.get(gw.url + path)
        assert resp.status_code == 401, (path, resp.status_code)
        assert "/v1/chat/completions" not in resp.text, "a client without a key learns no routes"
    assert httpx.get(gw.url + "/healthz").status_code == 200
    management = f"http://127.0.0.1:{port}"
    assert httpx.get(management + "/metrics").status_code == 200
    ready = httpx.get(management + "/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert "127.0.0.1" not in ready.text and "http" not in ready.text, "no engine URL"
    for path in ("/docs", "/openapi.json"):
        assert httpx.get(management + path).status_code == 404


async def test_2e_docs_only_when_asked_and_readyz_names_no_engine(engine: tuple[HostileEngine, str]) -> None:
    async with gateway(engine[1]) as gw:
        for path in ("/docs", "/openapi.json"):
            assert (await gw.client.get(path)).status_code == 404
        ready = await gw.client.get("/readyz")
        assert ready.status_code == 200 and engine[1] not in ready.text
    async with gateway(engine[1], docs=True) as gw:
        assert (await gw.client.get("/openapi.json")).status_code == 200


# -- 4. `model` is never cut -------------------------------------------------------------------------------------
async def test_4_every_logged_string_is_capped_model_included(inproc: InProcessGateway) -> None:
    huge = "m" * 3_000_000
    resp = await inproc.client.post(POST, json={**CHAT, "model": huge}, headers={"User-Agent": "u" * 5000})
    assert resp.status_code == 200
    line = _one_line(inproc)
    assert len(line["model"]) == 200 and len(line["user_agent"]) == 200
    assert len(json.dumps(line)) < 4000


# -- 5. A malformed engine chunk loses the line -------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["usage-string", "usage-list", "usage-negative", "finish-int", "non-object"])
async def test_5_malformed_engine_chunks_still_give_one_line(
    engine: tuple[HostileEngine, str], inproc: InProcessGateway, mode: str
) -> None:
    engine[0].mode = mode
    resp = await inproc.client.post(POST, json={**CHAT, "stream": True})
    assert resp.status_code == 200 and resp.text.endswith("data: [DONE]\n\n")
    line = _one_line(inproc)
    assert line["status"] == 200 and line["error_type"] is None
    assert line["finish_reason"] in ("stop", None)
    if mode != "non-object":
        assert inproc.sample("llmwatch_engine_anomalies_total") >= 1
    if mode == "usage-negative":
        # The valid count stays; the invalid one is counted from the stream's content deltas instead.
        assert line["prompt_tokens"] == 3 and line["completion_tokens"] == COMPLETION_TOKENS - 1
    assert inproc.sample("llmwatch_requests_total", status="200") == 1
    assert inproc.sample("llmwatch_report_failures_total") == 0


# -- 6. Pipelined requests with a client that closes --------------------------------------------------------------
def test_6_pipelined_requests_each_get_a_line_and_a_closing_client_is_499(
    start_gateway: GatewayFactory, engine: tuple[HostileEngine, str]
) -> None:
    eng, url = engine
    eng.mode = "slow"
    gw = start_gateway(url)
    body = json.dumps({**CHAT, "stream": True}).encode()
    head = f"POST {POST} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])), timeout=5) as sock:
        sock.sendall(head.encode() + body + b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n\r\n")
        deadline = time.monotonic() + 0.8
        sock.settimeout(0.1)
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                sock.recv(65536)
    lines = gw.wait_lines(2)
    assert sorted((x["path"], x["status"], x["error_type"]) for x in lines) == [
        ("/v1/chat/completions", 499, "client_disconnect"), ("/v1/models", 499, "client_disconnect")]  # fmt: skip
    wait_until(lambda: eng.streams_cancelled == 1, 5, "the engine to see the cancel")
    assert total(gw.metrics(), "llmwatch_requests_total", status="500") == 0


# -- 7. A long header value gets round --max-header-bytes ---------------------------------------------------------
def _chat_seconds(url: str) -> float:
    started = time.perf_counter()
    assert httpx.post(url + POST, json=CHAT, timeout=60).status_code == 200
    return time.perf_counter() - started


def test_7_endless_header_lines_do_not_stall_other_clients(
    start_gateway: GatewayFactory, engine: tuple[HostileEngine, str]
) -> None:
    gw = start_gateway(engine[1])
    port = int(gw.url.rsplit(":", 1)[1])
    idle = statistics.median(_chat_seconds(gw.url) for _ in range(7))
    peak_before = _rss_peak_kb(gw.proc.pid)
    stop = threading.Event()
    closed: list[bool] = []

    def attacker() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nX-Long: ")
            piece = b"x" * 1024
            try:
                while not stop.is_set():
                    sock.sendall(piece)
            except OSError:
                closed.append(True)  # the gateway refused the head and closed the connection

    threads = [threading.Thread(target=attacker, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        loaded = statistics.median(_chat_seconds(gw.url) for _ in range(7))
        wait_until(lambda: len(closed) == 4, 10, "every attacker's connection to be closed")
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert loaded <= 2 * idle, f"a chat took {loaded:.3f}s under attack, {idle:.3f}s idle"
    grown_mb = (_rss_peak_kb(gw.proc.pid) - peak_before) / 1024
    assert grown_mb < 32, f"the gateway's peak memory grew by {grown_mb:.0f} MB under the attack"
    assert total(gw.metrics(), "llmwatch_connections_rejected_total", reason="header_too_large") == 4


# -- 8. After a 408 or 413 the connection stays open --------------------------------------------------------------
def test_8_errors_before_the_body_close_the_connection(
    start_gateway: GatewayFactory, engine: tuple[HostileEngine, str]
) -> None:
    gw = start_gateway(engine[1], "--body-timeout", "0.5", "--max-body-bytes", "10000")
    port = int(gw.url.rsplit(":", 1)[1])
    socks = []
    for n in range(20):
        length = 10**9 if n % 2 else 5000  # 413 at once, or 408 once the body stalls
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(f"POST {POST} HTTP/1.1\r\nHost: gw\r\nContent-Length: {length}\r\n\r\n{{".encode())
        sock.setblocking(False)
        socks.append(sock)
    answers = {sock: b"" for sock in socks}
    open_ = set(socks)
    deadline = time.monotonic() + 8
    while open_ and time.monotonic() < deadline:
        for sock in list(open_):
            try:
                sock.send(b" ")  # each body byte used to reset uvicorn's keep-alive timer
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                open_.discard(sock)
                continue
            if not data:
                open_.discard(sock)
            answers[sock] += data
        time.sleep(0.1)
    for sock in socks:
        sock.close()
    assert not open_, f"{len(open_)} of 20 connections still open after their error"
    # An answer can be lost to the reset that closing a socket with unread bytes sends; the log has every one.
    got = [a for a in answers.values() if a]
    assert got and all(a.split(b" ", 2)[1] in (b"408", b"413") and b"connection: close" in a.lower() for a in got)
    statuses = sorted(line["status"] for line in gw.wait_lines(20))
    assert statuses == [408] * 10 + [413] * 10, statuses


# -- 9. Engine responses are buffered without limit ---------------------------------------------------------------
@pytest.mark.parametrize("mode", ["huge-body", "huge-line"])
def test_9_huge_engine_answers_are_refused_with_flat_memory(
    start_gateway: GatewayFactory, engine: tuple[HostileEngine, str], mode: str
) -> None:
    eng, url = engine
    eng.mode = mode
    gw = start_gateway(url)
    httpx.get(gw.url + "/v1/models")  # warm the process up before its peak is read
    before = _rss_peak_kb(gw.proc.pid)
    resp = httpx.post(gw.url + POST, json={**CHAT, "stream": mode == "huge-line"}, timeout=60)
    if mode == "huge-body":
        assert resp.status_code == 502 and resp.json()["error"]["code"] == "upstream_too_large"
        assert url not in resp.text, "engine URLs stay out of client messages"
    else:
        assert resp.status_code == 200 and '"upstream_too_large"' in resp.text.strip().splitlines()[-1]
    line = gw.wait_lines(2)[-1]
    assert (line["status"], line["error_type"]) == (502, "upstream_too_large")
    jsonschema.validate(line, SCHEMA)
    grown_mb = (_rss_peak_kb(gw.proc.pid) - before) / 1024
    assert grown_mb < 150, f"the gateway's peak memory grew by {grown_mb:.0f} MB"


# -- Smaller ones -------------------------------------------------------------------------------------------------
async def test_client_request_ids_are_taken_only_when_printable_and_short(inproc: InProcessGateway) -> None:
    ok = await inproc.client.post(POST, json=CHAT, headers={"X-Request-Id": "abc-123"})
    assert ok.headers["x-request-id"] == "abc-123" and _one_line(inproc)["request_id"] == "abc-123"
    for bad in ("é" * 10, "x" * 129, "a b\x01"):
        resp = await inproc.client.post(POST, json=CHAT, headers={"X-Request-Id": bad.encode("latin-1")})
        line = _one_line(inproc)
        assert line["request_id"] != bad and len(line["request_id"]) == 32
        assert resp.headers["x-request-id"] == line["request_id"]
        assert line["client_request_id"] == bad.encode("latin-1").decode("latin-1")[:128]


async def test_engine_urls_stay_out_of_client_messages() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with gateway(dead) as gw:
        resp = await gw.client.post(POST, json=CHAT)
        assert resp.status_code == 502 and dead not in resp.text
        assert dead in _one_line(gw)["error_message"], "the log line keeps it for the operator"


def test_upgrades_and_bad_chunk_sizes_are_refused_with_a_line(
    start_gateway: GatewayFactory, engine: tuple[HostileEngine, str]
) -> None:
    gw = start_gateway(engine[1])
    port = int(gw.url.rsplit(":", 1)[1])
    body = json.dumps(CHAT).encode()
    requests = [
        f"POST {POST} HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        f"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body,
        b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        f"POST {POST} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".encode() + body,
    ]
    for n, raw in enumerate(requests):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(raw)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400"), answer
        line = gw.wait_lines(n + 1)[-1]
        assert (line["status"], line["error_type"]) == (400, "invalid_request"), line
    assert engine[0].generations() == []


async def test_a_failing_metric_update_still_writes_the_line(
    inproc: InProcessGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("metrics broke")

    monkeypatch.setattr(inproc.app.proxy._reporter, "_observe", boom)
    resp = await inproc.client.post(POST, json=CHAT)
    assert resp.status_code == 200
    assert _one_line(inproc)["status"] == 200
    assert inproc.sample("llmwatch_report_failures_total", step="metrics") == 1


async def test_a_failing_accounting_step_still_writes_the_line(
    inproc: InProcessGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmwatch.gateway.accounting import CompletionAccounting

    def boom(*_: Any) -> None:
        raise RuntimeError("accounting broke")

    monkeypatch.setattr(CompletionAccounting, "token_counts", boom)
    resp = await inproc.client.post(POST, json=CHAT)
    assert resp.status_code == 200
    line = _one_line(inproc)
    assert (line["status"], line["prompt_tokens"], line["model"]) == (200, None, MODEL)
    assert inproc.sample("llmwatch_report_failures_total", step="outcome") == 1
    assert inproc.sample("llmwatch_requests_total", status="200") == 1
