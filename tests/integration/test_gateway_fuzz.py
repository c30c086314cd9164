"""Property-based fuzzing of the gateway in front of the simulator: random raw paths, methods, headers and bodies;
and in front of a scripted engine that answers with random chunks (malformed usage, huge lines, non-object JSON).

For every request: no 5xx of the gateway's own making, exactly one schema-valid access-log line (management routes
excepted), and nothing reaches the engine but an allowed route, forwarded exactly as the client sent it.
"""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import jsonschema
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmwatch.gateway.routes import RouteTable, check_raw_path, parse_routes
from tests.support import REPO
from tests.support.inprocess import MODEL, InProcessGateway, LoopThread, gateway, serving, simulator
from tests.support.vllm_chunks import chunk

pytestmark = pytest.mark.integration

SCHEMA = json.loads((REPO / "services/llmwatch/gateway/access-log.schema.json").read_text())
DEFAULT_ROUTES = RouteTable(parse_routes([]))
EXAMPLES = 400
ENGINE_EXAMPLES = 150
RUN: dict[str, int] = {"cases": 0, "engine_cases": 0}

# Segments an attacker or a broken client would try, and plain ones the allow-list knows.
SEGMENTS = st.sampled_from([
    "v1", "chat", "completions", "models", "admin", "faults", "tokenize", "metrics", "health", "embeddings",
    ".", "..", "%2e%2e", "%2E", ".%2e", "%2f", "%2F", "%5c", "..%2f", "", "a;b", "x\\y", "%25", "%252e", "%zz", "%20",
    "deepseek-ai", "DeepSeek-R1-Distill-Qwen-1.5B", "%C3%A9",
]) | st.text(string.ascii_letters + string.digits + "-._~!$&'()*+,=:@%", max_size=8)  # fmt: skip
GOOD_PATHS = st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/models", f"/v1/models/{MODEL}"])
# Random segments, often after an allowed prefix, where a traversal would do harm (/v1/models/{id} takes any tail).
PREFIXES = st.sampled_from(["", "/v1", "/v1/models", "/v1/chat", "/v1/chat/completions", f"/v1/models/{MODEL}"])
PATHS = GOOD_PATHS | st.tuples(PREFIXES, st.lists(SEGMENTS, min_size=1, max_size=4)).map(
    lambda p: p[0] + "/" + "/".join(p[1])
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
QUERIES = st.just("") | st.text(string.ascii_letters + "=&%./", max_size=12)
HEADER_VALUES = st.text(string.printable.strip("\r\n\x0b\x0c"), max_size=300)
HEADER_NAMES = st.sampled_from(
    ["authorization", "x-request-id", "content-type", "x-llmwatch-kind", "x-openwebui-user-name", "content-length",
     "user-agent", "accept-encoding"]
)  # fmt: skip
HEADERS = st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=4)
MESSAGES = st.just([{"role": "user", "content": "hi"}]) | st.lists(
    st.dictionaries(st.sampled_from(["role", "content"]), st.text(max_size=20) | st.integers() | st.none()),
    max_size=3,
)
# What a JSON field can hold, of every type: the gateway must refuse or pass each, never fail on one.
ANY_VALUE = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.just([])
    | st.just({})
)
JSON_BODIES = st.fixed_dictionaries(
    {"model": st.just(MODEL) | st.text(max_size=10) | st.just("m" * 5000) | ANY_VALUE, "messages": MESSAGES},
    optional={
        "stream": st.booleans() | st.sampled_from(["true", "false", "yes", "on", 1, 0]) | ANY_VALUE,
        "max_tokens": st.integers(-2, 40) | st.just(10**9) | ANY_VALUE,
        "n": st.integers(-1, 3) | ANY_VALUE,
        "stream_options": ANY_VALUE
        | st.dictionaries(st.sampled_from(["include_usage", "x"]), st.booleans() | st.sampled_from(["false", 1])),
        "prompt": st.text(max_size=30),
    },
).map(lambda body: json.dumps(body).encode())
BODIES = JSON_BODIES | st.binary(max_size=200)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[LoopThread, InProcessGateway, list[tuple[str, str]]]]:
    received: list[tuple[str, str]] = []
    loop = LoopThread()
    try:
        url, _ = loop.enter(simulator(received, max_model_len=2048))
        gw = loop.enter(gateway(url, max_body_bytes=100_000))
        yield loop, gw, received
    finally:
        loop.close()


async def _call(gw: InProcessGateway, method: str, raw: bytes, query: bytes, headers: list[tuple[bytes, bytes]],
                body: bytes) -> int:  # fmt: skip
    """One raw ASGI request, as uvicorn would pass it (decoded `path`, raw `raw_path`); the response status."""
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": unquote(raw.decode("latin-1")), "raw_path": raw,
             "query_string": query, "headers": headers, "client": ("127.0.0.1", 40000)}  # fmt: skip
    await gw.app(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    return int(starts[0]["status"])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=METHODS, path=PATHS, query=QUERIES, headers=HEADERS, body=BODIES)
def test_random_requests_are_refused_cleanly_and_logged_once(
    stack: tuple[LoopThread, InProcessGateway, list[tuple[str, str]]],
    method: str,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    loop, gw, received = stack
    RUN["cases"] += 1
    raw = path.encode()
    before_lines, before_received = len(gw.log.lines), len(received)
    encoded = [(k.encode(), v.encode("latin-1", "replace")) for k, v in headers]
    status = loop.run(_call(gw, method, raw, query.encode(), encoded, body))
    lines = gw.log.lines[before_lines:]
    if unquote(path) in gw.app.management_paths:
        assert lines == [], "management routes are not logged"
        return
    assert len(lines) == 1, f"{method} {path}: {len(lines)} log lines"
    line = lines[0]
    jsonschema.validate(line, SCHEMA)
    assert line["status"] == status or (status == 200 and line["status"] >= 500), (status, line)
    if status >= 500 or line["status"] >= 500:
        assert line["error_type"] not in ("internal_error", None), f"the gateway failed on {method} {path}: {line}"
    for seen_method, seen in received[before_received:]:
        seen_path, _, seen_query = seen.partition("?")
        if seen_path == "/health" or (seen_method, seen_path) == ("GET", "/v1/models"):
            continue  # the gateway's own probes
        check_raw_path(seen_path.encode())
        route, _ = DEFAULT_ROUTES.find(seen_method, seen_path.encode())
        assert route is not None, f"{seen_method} {seen} reached the engine"
        assert (seen_method, seen_path, seen_query) == (method, path, query), "forwarded other than sent"


# -- the engine's side: random chunks ---------------------------------------------------------------------------
MAX_LINE = 2048  # the gateway's --max-sse-line-bytes here, so a "huge" line stays cheap
USAGES = ANY_VALUE | st.lists(st.integers(-(2**40), 2**40), max_size=2) | st.fixed_dictionaries(
    {}, optional={name: ANY_VALUE | st.integers(-5, 50) for name in ("prompt_tokens", "completion_tokens",
                                                                      "total_tokens", "completion_tokens_details")},
)  # fmt: skip
DELTAS = st.fixed_dictionaries(
    {}, optional={"content": ANY_VALUE, "reasoning": ANY_VALUE, "role": st.just("assistant")}
)
GOOD_EVENTS = st.builds(lambda d: chunk(d), DELTAS) | st.builds(lambda u: chunk(None, usage=u), USAGES)
ODD_EVENTS = (
    # a finish_reason of any type, `choices` of any shape, and JSON that is no object at all
    st.builds(lambda f: chunk({}, f), ANY_VALUE)
    | st.builds(lambda c: {"choices": c}, ANY_VALUE | st.lists(ANY_VALUE, max_size=2))
    | st.lists(st.integers(-9, 9), max_size=3) | st.text(max_size=5) | st.integers(-(2**40), 2**40) | st.none()
)  # fmt: skip
EVENT_BYTES = (
    (GOOD_EVENTS | ODD_EVENTS).map(lambda e: b"data: " + orjson.dumps(e) + b"\n\n")
    | st.just(b"data: {" + b"x" * (MAX_LINE * 2) + b"}\n\n")  # a line past the limit
    | st.just(b"data: {not json\n\n")
    | st.just(b": a comment\n\n")
)
STREAMS = st.lists(EVENT_BYTES, max_size=8).flatmap(
    lambda events: st.sampled_from([b"".join(events) + b"data: [DONE]\n\n", b"".join(events)])
)
WHOLE_BODIES = st.fixed_dictionaries(
    {}, optional={"usage": USAGES, "choices": ANY_VALUE | st.lists(
        st.fixed_dictionaries({}, optional={"message": ANY_VALUE | DELTAS, "finish_reason": ANY_VALUE,
                                            "text": ANY_VALUE}), max_size=2)},
).map(orjson.dumps) | st.just(b"[1, 2]") | st.just(b"not json") | st.just(b"x" * 5000)  # fmt: skip


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[LoopThread, InProcessGateway, dict[str, bytes]]]:
    """The gateway in front of an engine that answers each generation with ``script["stream"]`` (SSE) or
    ``script["body"]`` (JSON), whatever they hold."""
    script: dict[str, bytes] = {"stream": b"", "body": b"{}"}

    async def generate(request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        if payload.get("stream") is True:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(script["stream"])
            await resp.write_eof()
            return resp
        return web.Response(body=script["body"], content_type="application/json")

    async def health(_: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/v1/chat/completions", generate)
    loop = LoopThread()
    try:
        url = loop.enter(serving(app))
        gw = loop.enter(gateway(url, max_sse_line_bytes=MAX_LINE, max_response_bytes=4096))
        yield loop, gw, script
    finally:
        loop.close()


@settings(max_examples=ENGINE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.booleans(), sse=STREAMS, body=WHOLE_BODIES, include_usage=st.booleans())
def test_random_engine_answers_still_give_one_schema_valid_line(
    scripted: tuple[LoopThread, InProcessGateway, dict[str, bytes]],
    stream: bool,
    sse: bytes,
    body: bytes,
    include_usage: bool,
) -> None:
    loop, gw, script = scripted
    RUN["engine_cases"] += 1
    script["stream"], script["body"] = sse, body
    before = len(gw.log.lines)
    request = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    if stream:
        request["stream_options"] = {"include_usage": include_usage}
    headers = [(b"content-type", b"application/json")]
    status = loop.run(_call(gw, "POST", b"/v1/chat/completions", b"", headers, json.dumps(request).encode()))
    lines = gw.log.lines[before:]
    assert len(lines) == 1, lines
    line = lines[0]
    jsonschema.validate(line, SCHEMA)
    assert line["error_type"] != "internal_error", line
    assert line["status"] == status or (status == 200 and line["status"] >= 500), (status, line)
    assert gw.sample("llmwatch_report_failures_total") == 0


def test_the_fuzzer_ran_its_cases() -> None:
    # Runs after the property tests in file order: hypothesis ran every example it was given.
    assert RUN["cases"] >= EXAMPLES, RUN
    assert RUN["engine_cases"] >= ENGINE_EXAMPLES, RUN
