"""The hot path: a plain ASGI handler for the engine's routes, no framework routing or middleware in the way.

Per request: check the raw path against the allow-list, the key and the limits, read the body, pick an upstream,
relay the answer. Per chunk: scan bytes, forward. Logging and metrics happen once, in `finally`, so every request
yields exactly one access-log line and one counter increment.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any
from urllib.parse import unquote

import aiohttp
import orjson
from yarl import URL

from llmwatch.gateway.accounting import CompletionAccounting
from llmwatch.gateway.classify import json_format, last_user_text, offers_tools, request_kind
from llmwatch.gateway.connection import ClientConnection, ClientGone
from llmwatch.gateway.errors import GatewayError, engine_error_type, error_message_of
from llmwatch.gateway.facts import RequestFacts
from llmwatch.gateway.headers import client_headers, upstream_headers
from llmwatch.gateway.limits import ConcurrencyLimits
from llmwatch.gateway.metrics import GatewayMetrics
from llmwatch.gateway.report import Reporter
from llmwatch.gateway.routes import GENERATION_PATHS, PathRefused, check_raw_path
from llmwatch.gateway.settings import GatewayConfig
from llmwatch.gateway.sse import SSEScanner
from llmwatch.gateway.upstreams import Upstream, UpstreamPool

log = logging.getLogger(__name__)

MAX_LOGGED_PATH = 200
_WANTED = frozenset(
    {b"authorization", b"x-request-id", b"content-length", b"user-agent", b"x-openwebui-user-name",
     b"x-openwebui-user-id", b"x-llmwatch-kind"}
)  # fmt: skip


class Proxy:
    def __init__(self, config: GatewayConfig, pool: UpstreamPool, reporter: Reporter, metrics: GatewayMetrics) -> None:
        s = config.settings
        self._config = config
        self._routes = config.routes
        self._keyring = config.keyring
        self._pool = pool
        self._reporter = reporter
        self._metrics = metrics
        self._limits = ConcurrencyLimits(s.max_concurrency, s.max_concurrency_per_key)
        self._max_body = s.max_body_bytes
        self._body_timeout = s.body_timeout
        self._max_seconds = s.max_stream_seconds
        self._keep_text = config.content_chars is not None
        self._always_usage = s.always_return_usage

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.split(b"?", 1)[0]  # some servers put the query in raw_path; ASGI says not to
        facts = RequestFacts(
            scope["method"], path[:MAX_LOGGED_PATH].decode("latin-1"), time.perf_counter(), time.time()
        )
        conn = ClientConnection(receive, send)
        self._metrics.in_flight.inc()
        try:
            async with asyncio.timeout(self._max_seconds) as deadline:
                await self._serve(scope, path, conn, facts)
        except GatewayError as exc:
            facts.fail(exc.error_type, exc.status, exc.message)
            await conn.send_error(exc, facts.request_id)
        except ClientGone:
            facts.fail("client_disconnect", 499, "client closed the connection")
        except asyncio.CancelledError:
            if not conn.gone:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            facts.fail("client_disconnect", 499, "client closed the connection")
        except TimeoutError:
            if not deadline.expired():
                raise
            error = GatewayError(
                "stream_too_long", f"The request ran past the gateway's limit of {self._max_seconds:g} s end to "
                "end; lower max_tokens, or raise --max-stream-seconds.",
            )  # fmt: skip
            facts.fail(error.error_type, error.status, error.message)
            await conn.send_error(error, facts.request_id)
        except Exception as exc:
            log.exception("request %s failed inside the gateway", facts.request_id)
            error = GatewayError("internal_error", f"gateway error: {type(exc).__name__}")
            facts.fail(error.error_type, error.status, error.message)
            await conn.send_error(error, facts.request_id)
        finally:
            conn.stop_watching()
            self._metrics.in_flight.dec()
            if facts.acct is not None:
                facts.acct.finish()
            self._reporter.report(facts)

    async def _serve(self, scope: dict[str, Any], path: bytes, conn: ClientConnection, facts: RequestFacts) -> None:
        h = {k: v for k, v in scope["headers"] if k in _WANTED}
        rid = h.get(b"x-request-id", b"").decode("latin-1").strip()
        facts.request_id = rid if 0 < len(rid) <= 200 else os.urandom(16).hex()  # uuid4().hex sans UUID object
        client = scope.get("client")
        facts.client_ip = client[0] if client else None
        facts.user_agent = _text(h.get(b"user-agent"))
        query = scope.get("query_string") or b""
        self._check_route(facts.method, path, query)
        key_name = None
        if self._keyring is not None:
            key_name = self._keyring.name_for(h.get(b"authorization"))
            if key_name is None:
                raise GatewayError(
                    "unauthorized", "Missing or invalid API key: send `Authorization: Bearer <key>` with a key "
                    "listed in the gateway's --api-keys file.",
                )  # fmt: skip
        # Open WebUI percent-encodes the UTF-8 name ("Zo%C3%AB"); header values are latin-1 otherwise.
        facts.user = _unquoted(h.get(b"x-openwebui-user-name")) or _text(h.get(b"x-openwebui-user-id")) or key_name
        generation = facts.method == "POST" and path in GENERATION_PATHS
        if generation:
            facts.kind = "chat"  # until the body says otherwise; a malformed request still counts as user traffic
        with self._limits.hold(key_name):
            try:
                async with asyncio.timeout(self._body_timeout):
                    body = await conn.read_body(self._max_body, h.get(b"content-length"))
            except TimeoutError:
                raise GatewayError(
                    "body_timeout", f"The request body did not arrive within {self._body_timeout:g} s; send it "
                    "faster, or raise the gateway's --body-timeout.",
                ) from None  # fmt: skip
            strip = False
            if generation:
                body, strip = self._prepare_generation(body, facts, h)
            upstream = self._pool.pick()
            facts.upstream = upstream.base
            headers = upstream_headers(
                scope["headers"], facts.request_id, self._keyring is not None, self._config.upstream_auth, generation
            )
            conn.watch_disconnect()
            upstream.in_flight += 1
            try:
                target = upstream.base + path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
                await self._exchange(upstream, URL(target, encoded=True), headers, body, conn, facts, strip)
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

    def _prepare_generation(self, body: bytes, facts: RequestFacts, h: dict[bytes, bytes]) -> tuple[bytes, bool]:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise GatewayError("invalid_json", f"The request body is not valid JSON ({exc}).") from None
        if not isinstance(payload, dict):
            raise GatewayError("invalid_request", "The request body must be a JSON object.")
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise GatewayError(
                "invalid_request", "Missing `model`: name the model to use (see GET /v1/models).", "model"
            )
        facts.model = model
        facts.stream = payload.get("stream") is True
        facts.kind = request_kind(payload, h.get(b"x-llmwatch-kind"))
        if self._keep_text:
            facts.prompt_text = last_user_text(payload)
        facts.tools_offered = offers_tools(payload)
        facts.response_format = json_format(payload)
        facts.acct = CompletionAccounting(self._keep_text, check_json=facts.response_format is not None)
        strip = False
        if facts.stream:
            options = payload.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                # Ask for usage so token counts are exact; the client is spared the extra chunk unless configured.
                payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
                body = orjson.dumps(payload)
                strip = not self._always_usage
        return body, strip

    async def _exchange(
        self,
        upstream: Upstream,
        url: URL,
        headers: list[tuple[str, str]],
        body: bytes,
        conn: ClientConnection,
        facts: RequestFacts,
        strip: bool,
    ) -> None:
        rid = facts.request_id.encode("latin-1")
        try:
            async with upstream.session.request(facts.method, url, data=body or None, headers=headers) as resp:
                facts.status = resp.status
                sse = resp.content_type == "text/event-stream"
                if facts.acct is not None and sse and resp.status < 400:
                    await self._relay_stream(resp, conn, facts, facts.acct, strip, rid)
                else:
                    await self._relay_whole(resp, conn, facts, rid)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            # aiohttp's own timers (connect, sock_read); the end-to-end limit arrives as a cancellation instead.
            what = "sent nothing for" if conn.started else "did not answer within"
            raise GatewayError(
                "upstream_timeout", f"The engine at {upstream.base} {what} the gateway's timeout; raise "
                "--read-timeout/--connect-timeout or check the engine's queue.",
            ) from None  # fmt: skip
        except aiohttp.ClientConnectorError as exc:
            raise GatewayError(
                "upstream_unreachable", f"Cannot reach the engine at {upstream.base}: {exc.strerror}."
            ) from None
        except aiohttp.ClientError as exc:
            kind = "upstream_stream_broken" if conn.started else "upstream_disconnect"
            raise GatewayError(
                kind, f"The engine at {upstream.base} closed the connection ({type(exc).__name__})."
            ) from None

    async def _relay_stream(
        self,
        resp: aiohttp.ClientResponse,
        conn: ClientConnection,
        facts: RequestFacts,
        acct: CompletionAccounting,
        strip: bool,
        rid: bytes,
    ) -> None:
        scanner = SSEScanner(acct.on_chunk, strip)
        await conn.start(resp.status, client_headers(list(resp.raw_headers), rid))
        send = conn.send_body
        clock = time.perf_counter
        async for chunk in resp.content.iter_any():
            out = scanner.feed(chunk, clock())
            if out:
                await send(out)
            if scanner.done and conn.watching:
                # The client has its answer: closing now (SDKs do, at [DONE]) is not a disconnect, even if the
                # engine's end of the body is still on its way.
                conn.stop_watching()
        tail = scanner.flush()
        if acct.stream_error is not None:
            facts.fail("upstream_error", 502, acct.stream_error)
        elif not scanner.done:
            raise GatewayError(
                "upstream_stream_broken", f"The engine at {facts.upstream} ended the stream before [DONE]."
            )
        await conn.end(tail)

    async def _relay_whole(
        self, resp: aiohttp.ClientResponse, conn: ClientConnection, facts: RequestFacts, rid: bytes
    ) -> None:
        data = await resp.read()
        if resp.status >= 400:
            facts.error_message = error_message_of(data)
            facts.error_type = engine_error_type(resp.status, facts.error_message)
            if facts.error_type == "engine_auth":
                raise GatewayError(
                    "engine_auth", f"The engine at {facts.upstream} refused the gateway's key ({resp.status}): set "
                    "--upstream-api-key to the engine's --api-key.",
                )  # fmt: skip
        elif facts.acct is not None:
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                facts.acct.on_response(obj)
        headers = client_headers(list(resp.raw_headers), rid)
        headers.append((b"content-length", str(len(data)).encode()))
        await conn.start(resp.status, headers)
        await conn.end(data)


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace")[:200] if value else None


def _unquoted(value: bytes | None) -> str | None:
    return unquote(value.decode("latin-1"))[:200] if value else None
