"""Property-based fuzzing of the gateway in front of the simulator: random raw paths, methods, headers and bodies.

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
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmwatch.gateway.app import MANAGEMENT_PATHS
from llmwatch.gateway.routes import RouteTable, check_raw_path, parse_routes
from tests.inprocess import MODEL, InProcessGateway, LoopThread, gateway, simulator
from tests.support import REPO

pytestmark = pytest.mark.integration

SCHEMA = json.loads((REPO / "services/llmwatch/gateway/access-log.schema.json").read_text())
DEFAULT_ROUTES = RouteTable(parse_routes([]))
EXAMPLES = 400
RUN: dict[str, int] = {"cases": 0}

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
JSON_BODIES = st.fixed_dictionaries(
    {"model": st.just(MODEL) | st.text(max_size=10), "messages": MESSAGES},
    optional={
        "stream": st.booleans() | st.text(max_size=3),
        "max_tokens": st.integers(-2, 40) | st.just(10**9),
        "stream_options": st.none() | st.dictionaries(st.sampled_from(["include_usage", "x"]), st.booleans()),
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
    if unquote(path) in MANAGEMENT_PATHS:
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


def test_the_fuzzer_ran_its_cases() -> None:
    # Runs after the property test in file order: hypothesis ran every example it was given.
    assert RUN["cases"] >= EXAMPLES, RUN
