"""The hot path: a plain ASGI handler for the engine's routes, no framework routing or middleware in the way.

Per request: check the raw path against the allow-list, the key and the limits, read the body (prepare.py checks a
generation's), pick an upstream, relay the answer (relay.py; per chunk: scan bytes, forward). Logging and metrics
happen once, in `finally`, so every request yields exactly one access-log line and one counter increment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from llmwatch.gateway.connection import ClientConnection, ClientGone
from llmwatch.gateway.deadline import Deadline
from llmwatch.gateway.errors import GatewayError
from llmwatch.gateway.facts import RequestFacts
from llmwatch.gateway.headers import upstream_headers
from llmwatch.gateway.limits import ConcurrencyLimits
from llmwatch.gateway.log_line import MAX_LOGGED_CHARS
from llmwatch.gateway.metrics import GatewayMetrics
from llmwatch.gateway.prepare import header_text, prepare_generation, request_id, user_of
from llmwatch.gateway.recorder import OutcomeRecorder
from llmwatch.gateway.relay import Relay
from llmwatch.gateway.routes import GENERATION_PATHS, PathRefused, check_raw_path
from llmwatch.gateway.settings import ProxyConfig
from llmwatch.gateway.upstreams import UpstreamPool

log = logging.getLogger(__name__)

MAX_LOGGED_PATH = MAX_LOGGED_CHARS
_WANTED = frozenset(
    {b"authorization", b"x-request-id", b"content-length", b"user-agent", b"x-openwebui-user-name",
     b"x-openwebui-user-id", b"x-llmwatch-kind", b"upgrade"}
)  # fmt: skip


class Proxy:
    def __init__(
        self, config: ProxyConfig, pool: UpstreamPool, relay: Relay, reporter: OutcomeRecorder, metrics: GatewayMetrics
    ) -> None:
        self._routes = config.routes
        self._keyring = config.keyring
        self._pool = pool
        self._relay = relay
        self._reporter = reporter
        self._metrics = metrics
        self._limits = ConcurrencyLimits(config.max_concurrency, config.max_concurrency_per_key)
        self._max_body = config.max_body_bytes
        self._body_timeout = config.body_timeout
        self._max_seconds = config.max_stream_seconds
        self._keep_text = config.keep_text
        self._always_usage = config.always_return_usage
        self._upstream_auth = config.upstream_auth
        self._forward = config.forward_headers

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.split(b"?", 1)[0]  # some servers put the query in raw_path; ASGI says not to
        facts = RequestFacts(
            scope["method"], path[:MAX_LOGGED_PATH].decode("latin-1"), time.perf_counter(), time.time()
        )
        conn = ClientConnection(receive, send, scope.get("state"))
        self._metrics.in_flight.inc()
        deadline = Deadline(self._max_seconds)
        try:
            try:
                await self._serve(scope, path, conn, facts)
            finally:
                deadline.disarm()
        except GatewayError as exc:
            facts.fail(exc.error_type, exc.log_message)
            await conn.send_error(exc, facts.request_id)
        except ClientGone:
            facts.fail("client_disconnect", "client closed the connection")
        except asyncio.CancelledError:
            if not (conn.gone or deadline.expired):
                raise
            deadline.uncancel()
            if conn.gone:
                conn.uncancel()
                facts.fail("client_disconnect", "client closed the connection")
                return
            error = GatewayError(
                "stream_too_long", f"The request ran past the gateway's limit of {self._max_seconds:g} s end to "
                "end; lower max_tokens, or raise --max-stream-seconds.",
            )  # fmt: skip
            facts.fail(error.error_type, error.message)
            await conn.send_error(error, facts.request_id)
        except Exception as exc:
            log.exception("request %s failed inside the gateway", facts.request_id)
            error = GatewayError("internal_error", f"gateway error: {type(exc).__name__}")
            facts.fail(error.error_type, error.message)
            await conn.send_error(error, facts.request_id)
        finally:
            conn.stop_watching()
            self._metrics.in_flight.dec()
            self._reporter.record(facts)  # never raises: the line is written whatever happened

    async def _serve(self, scope: dict[str, Any], path: bytes, conn: ClientConnection, facts: RequestFacts) -> None:
        h = {k: v for k, v in scope["headers"] if k in _WANTED}
        facts.request_id = request_id(h.get(b"x-request-id"), facts)
        client = scope.get("client")
        facts.client_ip = client[0] if client else None
        facts.user_agent = header_text(h.get(b"user-agent"))
        query = scope.get("query_string") or b""
        key = None
        if self._keyring is not None:  # before the route check: a client without a key learns nothing
            key = self._keyring.find(h.get(b"authorization"))
            if key is None:
                raise GatewayError(
                    "unauthorized", "Missing or invalid API key: send `Authorization: Bearer <key>` with a key "
                    "listed in the gateway's --api-keys file.",
                )  # fmt: skip
        facts.user = user_of(key, h)
        self._check_route(facts.method, path, query)
        if b"upgrade" in h:
            # uvicorn stops parsing at an Upgrade head, so a body after it would be lost; WebSocket and h2c are
            # not what the engine's routes speak. RFC 9110 7.8 lets a server refuse.
            raise GatewayError(
                "invalid_request", "Protocol upgrades (WebSocket, h2c) are not served; send plain HTTP/1.1 "
                "(curl: --http1.1).",
            )  # fmt: skip
        key_name = key.name if key is not None else None
        generation = facts.method == "POST" and path in GENERATION_PATHS
        if generation:
            facts.kind = "chat"  # until the body says otherwise; a malformed request still counts as user traffic
        with self._limits.hold(key_name):
            body = await conn.read_body(self._max_body, h.get(b"content-length"), self._body_timeout)
            strip = False
            if generation:
                body, strip = prepare_generation(body, facts, h, self._keep_text, self._always_usage)
            upstream = self._pool.pick()
            facts.upstream = upstream.base
            headers = upstream_headers(scope["headers"], facts.request_id, self._upstream_auth, self._forward)
            conn.watch_disconnect()
            upstream.in_flight += 1
            try:
                target = (
                    upstream.link.prefix + path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
                )
                await self._relay.exchange(upstream, target, headers, body, conn, facts, strip)
            finally:
                upstream.in_flight -= 1

    def _check_route(self, method: str, path: bytes, query: bytes) -> None:
        try:
            check_raw_path(path)
        except PathRefused as exc:
            raise GatewayError("bad_path", f"Refused path: {exc}.") from None
        route, allowed = self._routes.find(method, path)
        if route is None:
            if allowed:
                raise GatewayError(
                    "method_not_allowed", f"{method} is not allowed on this path; use {', '.join(allowed)}."
                )
            raise GatewayError(
                "route_not_allowed", "No such route here: the gateway serves "
                f"{', '.join(self._routes.describe())}; an operator can open more with --allow-route.",
            )  # fmt: skip
        if query and not route.query:
            raise GatewayError("bad_path", "This route takes no query string; send the parameters in the body.")
