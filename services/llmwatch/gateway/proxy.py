"""The hot path: a plain ASGI handler for /v1/*, no framework routing or middleware in the way.

Per request: read the body, check it, pick an upstream, relay the answer. Per chunk: scan bytes, forward. Logging
and metrics happen once, in `finally`, so every request yields exactly one line and one counter increment.
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

from llmwatch.gateway.accounting import CompletionAccounting
from llmwatch.gateway.auth import KeyRing
from llmwatch.gateway.classify import last_user_text, request_kind
from llmwatch.gateway.connection import ClientConnection, ClientGone
from llmwatch.gateway.errors import GatewayError, error_message_of
from llmwatch.gateway.headers import client_headers, upstream_headers
from llmwatch.gateway.metrics import GatewayMetrics
from llmwatch.gateway.record import RequestRecord
from llmwatch.gateway.recorder import Recorder
from llmwatch.gateway.settings import GatewaySettings
from llmwatch.gateway.sse import SSEScanner
from llmwatch.gateway.upstreams import Upstream, UpstreamPool

log = logging.getLogger(__name__)

GENERATION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
_WANTED = frozenset(
    {b"authorization", b"x-request-id", b"content-length", b"user-agent", b"x-openwebui-user-name",
     b"x-openwebui-user-id", b"x-llmwatch-kind"}
)  # fmt: skip


class Proxy:
    def __init__(
        self,
        settings: GatewaySettings,
        pool: UpstreamPool,
        recorder: Recorder,
        metrics: GatewayMetrics,
        keyring: KeyRing | None,
    ) -> None:
        self._s = settings
        self._pool = pool
        self._recorder = recorder
        self._metrics = metrics
        self._keyring = keyring

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec = RequestRecord(scope["method"], scope["path"], time.perf_counter(), time.time())
        conn = ClientConnection(receive, send)
        self._metrics.in_flight.inc()
        try:
            await self._serve(scope, conn, rec)
        except GatewayError as exc:
            rec.fail(exc.error_type, exc.status, exc.message)
            await conn.send_error(exc, rec.request_id)
        except ClientGone:
            rec.fail("client_disconnect", 499, "client closed the connection")
        except asyncio.CancelledError:
            if not conn.gone:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            rec.fail("client_disconnect", 499, "client closed the connection")
        except Exception as exc:
            log.exception("request %s failed inside the gateway", rec.request_id)
            error = GatewayError("internal_error", f"gateway error: {type(exc).__name__}")
            rec.fail(error.error_type, error.status, error.message)
            await conn.send_error(error, rec.request_id)
        finally:
            conn.stop_watching()
            self._metrics.in_flight.dec()
            self._recorder.record(rec)

    async def _serve(self, scope: dict[str, Any], conn: ClientConnection, rec: RequestRecord) -> None:
        h = {k: v for k, v in scope["headers"] if k in _WANTED}
        rid = h.get(b"x-request-id", b"").decode("latin-1").strip()
        rec.request_id = rid if 0 < len(rid) <= 200 else os.urandom(16).hex()  # uuid4().hex without the UUID object
        client = scope.get("client")
        rec.client_ip = client[0] if client else None
        rec.user_agent = _text(h.get(b"user-agent"))
        key_name = None
        if self._keyring is not None:
            key_name = self._keyring.name_for(h.get(b"authorization"))
            if key_name is None:
                raise GatewayError(
                    "unauthorized", "Missing or invalid API key: send `Authorization: Bearer <key>` with a key "
                    "listed in the gateway's --api-keys file.",
                )  # fmt: skip
        # Open WebUI percent-encodes the UTF-8 name ("Zo%C3%AB"); header values are latin-1 otherwise.
        rec.user = _unquoted(h.get(b"x-openwebui-user-name")) or _text(h.get(b"x-openwebui-user-id")) or key_name
        if not rec.path.startswith("/v1/"):
            raise GatewayError(
                "not_found", f"No route {rec.path}: the OpenAI API is under /v1/ (e.g. /v1/chat/completions)."
            )
        generation = rec.method == "POST" and rec.path in GENERATION_PATHS
        if generation:
            rec.kind = "chat"  # until the body says otherwise; a malformed request still counts as user traffic
        body = await conn.read_body(self._s.max_body_bytes, h.get(b"content-length"))
        strip = False
        if generation:
            body, strip = self._prepare_generation(body, rec, h)
        upstream = self._pool.pick()
        rec.upstream = upstream.base
        headers = upstream_headers(
            scope["headers"], rec.request_id, self._keyring is not None, self._s.upstream_api_key, generation
        )
        conn.watch_disconnect()
        upstream.in_flight += 1
        try:
            await self._exchange(upstream, scope, headers, body, conn, rec, strip)
        finally:
            upstream.in_flight -= 1

    def _prepare_generation(self, body: bytes, rec: RequestRecord, h: dict[bytes, bytes]) -> tuple[bytes, bool]:
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
        rec.model = model
        rec.stream = payload.get("stream") is True
        rec.kind = request_kind(payload, h.get(b"x-llmwatch-kind"))
        keep_text = self._s.log_content
        if keep_text:
            rec.prompt_text = last_user_text(payload)
        rec.acct = CompletionAccounting(keep_text)
        strip = False
        if rec.stream:
            options = payload.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                # Ask for usage so token counts are exact; the client is spared the extra chunk unless configured.
                payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
                body = orjson.dumps(payload)
                strip = not self._s.always_return_usage
        return body, strip

    async def _exchange(
        self,
        upstream: Upstream,
        scope: dict[str, Any],
        headers: list[tuple[str, str]],
        body: bytes,
        conn: ClientConnection,
        rec: RequestRecord,
        strip: bool,
    ) -> None:
        query = scope.get("query_string") or b""
        url = upstream.base + rec.path + ("?" + query.decode("latin-1") if query else "")
        rid = rec.request_id.encode("latin-1")
        try:
            async with upstream.session.request(rec.method, url, data=body or None, headers=headers) as resp:
                rec.status = resp.status
                sse = resp.content_type == "text/event-stream"
                if rec.acct is not None and sse and resp.status < 400:
                    await self._relay_stream(resp, conn, rec, rec.acct, strip, rid)
                else:
                    await self._relay_whole(resp, conn, rec, rid)
        except (TimeoutError, aiohttp.ServerTimeoutError):
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
        rec: RequestRecord,
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
        tail = scanner.flush()
        if acct.stream_error is not None:
            rec.fail("upstream_error", 502, acct.stream_error)
        elif not scanner.done:
            raise GatewayError(
                "upstream_stream_broken", f"The engine at {rec.upstream} ended the stream before [DONE]."
            )
        await conn.end(tail)

    async def _relay_whole(
        self, resp: aiohttp.ClientResponse, conn: ClientConnection, rec: RequestRecord, rid: bytes
    ) -> None:
        data = await resp.read()
        if resp.status >= 400:
            rec.error_type = "upstream_error"
            rec.error_message = error_message_of(data)
        elif rec.acct is not None:
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                rec.acct.on_response(obj)
        headers = client_headers(list(resp.raw_headers), rid)
        headers.append((b"content-length", str(len(data)).encode()))
        await conn.start(resp.status, headers)
        await conn.end(data)


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace")[:200] if value else None


def _unquoted(value: bytes | None) -> str | None:
    return unquote(value.decode("latin-1"))[:200] if value else None
