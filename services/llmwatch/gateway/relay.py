"""The relay: one request sent to an engine and its answer passed on, a stream chunk by chunk or a body whole, with
the accounting fed on the way. The proxy relays to its client; the warm-up relays to nobody (it reads the answer
and drops it), so both see an engine the same way and get the same error types (link_errors.py).
"""

from __future__ import annotations

import time
from typing import Protocol

import aiohttp
import orjson
from yarl import URL

from llmwatch.gateway.accounting import CompletionAccounting
from llmwatch.gateway.errors import GatewayError, engine_error_type, error_message_of
from llmwatch.gateway.facts import RequestFacts
from llmwatch.gateway.headers import client_headers
from llmwatch.gateway.link_errors import LINK_ERRORS, engine_error, link_error
from llmwatch.gateway.sse import EventTooLarge, SSEScanner
from llmwatch.gateway.upstreams import Upstream


class Sink(Protocol):
    """Where the answer goes: the client's connection (connection.py), or nowhere (warmup.py)."""

    started: bool

    @property
    def watching(self) -> bool: ...

    def stop_watching(self) -> None: ...

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...

    def write_now(self, body: bytes) -> bool: ...

    async def send_body(self, body: bytes) -> None: ...

    async def end(self, body: bytes = b"") -> None: ...


class Relay:
    def __init__(self, max_response_bytes: int, max_sse_line_bytes: int) -> None:
        self._max_response = max_response_bytes
        self._max_sse_line = max_sse_line_bytes

    async def exchange(
        self,
        upstream: Upstream,
        url: URL,
        headers: list[tuple[str, str]],
        body: bytes,
        sink: Sink,
        facts: RequestFacts,
        strip: bool,
    ) -> None:
        """Send the request and relay the answer; a failure of the engine or the link raises GatewayError."""
        rid = facts.request_id.encode("latin-1")
        try:
            async with upstream.session.request(facts.method, url, data=body or None, headers=headers) as resp:
                facts.status = resp.status
                sse = resp.content_type == "text/event-stream"
                if facts.acct is not None and sse and resp.status < 400:
                    await self._stream(resp, sink, facts, facts.acct, strip, rid)
                else:
                    await self._whole(resp, sink, facts, rid)
        except LINK_ERRORS as exc:
            raise link_error(exc, upstream.base, sink.started) from None
        except EventTooLarge:
            raise engine_error(
                "upstream_too_large", upstream.base, f"sent an SSE line longer than {self._max_sse_line} bytes; the "
                "gateway stopped reading it (--max-sse-line-bytes).",
            ) from None  # fmt: skip

    async def _stream(
        self,
        resp: aiohttp.ClientResponse,
        sink: Sink,
        facts: RequestFacts,
        acct: CompletionAccounting,
        strip: bool,
        rid: bytes,
    ) -> None:
        scanner = SSEScanner(acct.on_chunk, strip, self._max_sse_line)
        await sink.start(resp.status, client_headers(list(resp.raw_headers), rid))
        write_now, send = sink.write_now, sink.send_body
        clock = time.perf_counter
        async for chunk in resp.content.iter_any():
            out = scanner.feed(chunk, clock())
            if out and not write_now(out):
                await send(out)
            if scanner.done and sink.watching:
                # The client has its answer: closing now (SDKs do, at [DONE]) is not a disconnect, even if the
                # engine's end of the body is still on its way.
                sink.stop_watching()
        tail = scanner.flush(clock())
        if scanner.malformed:
            acct.anomalies.append("chunk")
        if acct.stream_error is not None:
            facts.fail("upstream_error", acct.stream_error)
        elif not scanner.done:
            raise engine_error("upstream_stream_broken", facts.upstream, "ended the stream before [DONE].")
        await sink.end(tail)

    async def _whole(self, resp: aiohttp.ClientResponse, sink: Sink, facts: RequestFacts, rid: bytes) -> None:
        data = await self._read_bounded(resp, facts)
        if resp.status >= 400:
            facts.error_message = error_message_of(data)
            facts.error_type = engine_error_type(resp.status, facts.error_message)
            if facts.error_type == "engine_auth":
                raise engine_error(
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
        await sink.start(resp.status, headers)
        await sink.end(data)

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
        return engine_error(
            "upstream_too_large", facts.upstream, f"answered with a body over {self._max_response} bytes; the gateway "
            "stopped reading it (--max-response-bytes).",
        )  # fmt: skip
