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
from llmwatch.gateway.auth import ApiKey
from llmwatch.gateway.classify import json_format, last_user_text, offers_tools, request_kind
from llmwatch.gateway.connection import ClientConnection, ClientGone
from llmwatch.gateway.errors import GatewayError, engine_error_type, error_message_of
from llmwatch.gateway.facts import RequestFacts
from llmwatch.gateway.headers import client_headers, upstream_headers
from llmwatch.gateway.limits import ConcurrencyLimits
from llmwatch.gateway.log_line import MAX_LOGGED_CHARS
from llmwatch.gateway.metrics import GatewayMetrics
from llmwatch.gateway.recorder import OutcomeRecorder
from llmwatch.gateway.routes import GENERATION_PATHS, PathRefused, check_raw_path
from llmwatch.gateway.settings import GatewayConfig
from llmwatch.gateway.sse import EventTooLarge, SSEScanner
from llmwatch.gateway.upstreams import Upstream, UpstreamPool

log = logging.getLogger(__name__)

MAX_LOGGED_PATH = MAX_LOGGED_CHARS
MAX_REQUEST_ID = 128  # a client's X-Request-Id is taken only if printable ASCII and at most this long
_PRINTABLE = frozenset(range(0x20, 0x7F))
_WANTED = frozenset(
    {b"authorization", b"x-request-id", b"content-length", b"user-agent", b"x-openwebui-user-name",
     b"x-openwebui-user-id", b"x-llmwatch-kind", b"upgrade"}
)  # fmt: skip


class Proxy:
    def __init__(
        self, config: GatewayConfig, pool: UpstreamPool, reporter: OutcomeRecorder, metrics: GatewayMetrics
    ) -> None:
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
        self._max_response = s.max_response_bytes
        self._max_sse_line = s.max_sse_line_bytes
        self._forward = config.forward_headers

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.split(b"?", 1)[0]  # some servers put the query in raw_path; ASGI says not to
        facts = RequestFacts(
            scope["method"], path[:MAX_LOGGED_PATH].decode("latin-1"), time.perf_counter(), time.time()
        )
        conn = ClientConnection(receive, send, scope.get("state"))
        self._metrics.in_flight.inc()
        try:
            async with asyncio.timeout(self._max_seconds) as deadline:
                await self._serve(scope, path, conn, facts)
        except GatewayError as exc:
            facts.fail(exc.error_type, exc.status, exc.log_message)
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
            self._reporter.record(facts)  # never raises: the line is written whatever happened

    async def _serve(self, scope: dict[str, Any], path: bytes, conn: ClientConnection, facts: RequestFacts) -> None:
        h = {k: v for k, v in scope["headers"] if k in _WANTED}
        facts.request_id = self._request_id(h.get(b"x-request-id"), facts)
        client = scope.get("client")
        facts.client_ip = client[0] if client else None
        facts.user_agent = _text(h.get(b"user-agent"))
        query = scope.get("query_string") or b""
        key = None
        if self._keyring is not None:  # before the route check: a client without a key learns nothing
            key = self._keyring.find(h.get(b"authorization"))
            if key is None:
                raise GatewayError(
                    "unauthorized", "Missing or invalid API key: send `Authorization: Bearer <key>` with a key "
                    "listed in the gateway's --api-keys file.",
                )  # fmt: skip
        facts.user = _user(key, h)
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
            headers = upstream_headers(scope["headers"], facts.request_id, self._config.upstream_auth, self._forward)
            conn.watch_disconnect()
            upstream.in_flight += 1
            try:
                target = upstream.base + path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
                await self._exchange(upstream, URL(target, encoded=True), headers, body, conn, facts, strip)
            finally:
                upstream.in_flight -= 1

    @staticmethod
    def _request_id(sent: bytes | None, facts: RequestFacts) -> str:
        """The client's X-Request-Id if printable ASCII and short enough, else a new one (the client's, cut, is
        logged apart): an id that reaches the engine, the log and the response the same everywhere."""
        if sent:
            rid = sent.strip()
            if 0 < len(rid) <= MAX_REQUEST_ID and _PRINTABLE.issuperset(rid):
                return rid.decode("ascii")
            facts.client_request_id = sent[:MAX_REQUEST_ID].decode("latin-1")
        return os.urandom(16).hex()  # uuid4().hex sans UUID object

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
        facts.model = model[:MAX_LOGGED_CHARS]
        facts.stream = _flag(payload, "stream", "stream")
        options = payload.get("stream_options")
        if options is not None:
            if not isinstance(options, dict):
                raise GatewayError("invalid_request", "`stream_options` must be an object or null.", "stream_options")
            _flag(options, "include_usage", "stream_options.include_usage")
        facts.kind = request_kind(payload, h.get(b"x-llmwatch-kind"))
        if self._keep_text:
            facts.prompt_text = last_user_text(payload)
        facts.tools_offered = offers_tools(payload)
        facts.response_format = json_format(payload)
        facts.acct = CompletionAccounting(self._keep_text, check_json=facts.response_format is not None)
        strip = False
        if facts.stream and not (options and options.get("include_usage") is True):
            # Ask for usage so token counts are exact; the client is spared the extra chunk unless configured.
            payload["stream_options"] = {**(options or {}), "include_usage": True}
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
            raise _engine_error(
                "upstream_timeout", upstream.base, f"{what} the gateway's timeout; raise --read-timeout/"
                "--connect-timeout or check the engine's queue.",
            ) from None  # fmt: skip
        except aiohttp.ClientConnectorError as exc:
            raise _engine_error("upstream_unreachable", upstream.base, f"cannot be reached: {exc.strerror}.") from None
        except aiohttp.ClientError as exc:
            kind = "upstream_stream_broken" if conn.started else "upstream_disconnect"
            raise _engine_error(kind, upstream.base, f"closed the connection ({type(exc).__name__}).") from None
        except EventTooLarge:
            raise _engine_error(
                "upstream_too_large", upstream.base, f"sent an SSE line longer than {self._max_sse_line} bytes; the "
                "gateway stopped reading it (--max-sse-line-bytes).",
            ) from None  # fmt: skip

    async def _relay_stream(
        self,
        resp: aiohttp.ClientResponse,
        conn: ClientConnection,
        facts: RequestFacts,
        acct: CompletionAccounting,
        strip: bool,
        rid: bytes,
    ) -> None:
        scanner = SSEScanner(acct.on_chunk, strip, self._max_sse_line)
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
        if scanner.malformed:
            acct.anomalies.append("chunk")
        if acct.stream_error is not None:
            facts.fail("upstream_error", 502, acct.stream_error)
        elif not scanner.done:
            raise _engine_error("upstream_stream_broken", facts.upstream, "ended the stream before [DONE].")
        await conn.end(tail)

    async def _relay_whole(
        self, resp: aiohttp.ClientResponse, conn: ClientConnection, facts: RequestFacts, rid: bytes
    ) -> None:
        data = await self._read_bounded(resp, facts)
        if resp.status >= 400:
            facts.error_message = error_message_of(data)
            facts.error_type = engine_error_type(resp.status, facts.error_message)
            if facts.error_type == "engine_auth":
                raise _engine_error(
                    "engine_auth", facts.upstream, f"refused the gateway's key ({resp.status}): set "
                    "--upstream-api-key to the engine's --api-key.",
                )  # fmt: skip
        elif facts.acct is not None:
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                try:
                    facts.acct.on_response(obj)
                except (AttributeError, TypeError):  # not a completion the accounting can read: the engine's fault
                    facts.acct.anomalies.append("body")
        headers = client_headers(list(resp.raw_headers), rid)
        headers.append((b"content-length", str(len(data)).encode()))
        await conn.start(resp.status, headers)
        await conn.end(data)

    async def _read_bounded(self, resp: aiohttp.ClientResponse, facts: RequestFacts) -> bytes:
        """The whole body, or upstream_too_large once it passes --max-response-bytes (read no further)."""
        limit = self._max_response
        if resp.content_length is not None and resp.content_length > limit:
            raise self._too_large(facts)
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise self._too_large(facts)
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, facts: RequestFacts) -> GatewayError:
        return _engine_error(
            "upstream_too_large", facts.upstream, f"answered with a body over {self._max_response} bytes; the gateway "
            "stopped reading it (--max-response-bytes).",
        )  # fmt: skip


def _engine_error(error_type: str, base: str | None, what: str) -> GatewayError:
    """An engine failure: the client is told what happened, the access log also which engine (its URL)."""
    return GatewayError(error_type, f"The engine {what}", log_message=f"The engine at {base} {what}")


def _flag(obj: dict[str, Any], name: str, param: str) -> bool:
    """A boolean request field: true, false or null (absent). Anything else is refused, as OpenAI's API does; an
    engine that reads "true" or 1 as true would otherwise stream what the gateway counts as not streamed."""
    value = obj.get(name)
    if value is None or isinstance(value, bool):
        return value is True
    raise GatewayError("invalid_request", f"`{param}` must be true, false or null, not {type(value).__name__}.", param)


def _user(key: ApiKey | None, h: dict[bytes, bytes]) -> str | None:
    """The key decides the user; only a trusted forwarder (Open WebUI's key) may name the user it acts for."""
    if key is None:
        return None
    if key.forward_user:
        # Open WebUI percent-encodes the UTF-8 name ("Zo%C3%AB"); header values are latin-1 otherwise.
        return _unquoted(h.get(b"x-openwebui-user-name")) or _text(h.get(b"x-openwebui-user-id")) or key.name
    return key.name


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace")[:200] if value else None


def _unquoted(value: bytes | None) -> str | None:
    return unquote(value.decode("latin-1"))[:200] if value else None
