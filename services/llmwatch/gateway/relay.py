"""The relay: one request sent to an engine and its answer passed on, a stream chunk by chunk or a body whole, with
the accounting fed on the way. The proxy relays to its client; the warm-up relays to nobody (it reads the answer
and drops it), so both see an engine the same way and get the same error types (link_errors.py).
"""

from __future__ import annotations

import time
from typing import Protocol

import orjson

from llmwatch.gateway.accounting import CompletionAccounting
from llmwatch.gateway.engine_answer import Answer, BodyTooLarge
from llmwatch.gateway.errors import engine_error_type, error_message_of
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
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        sink: Sink,
        facts: RequestFacts,
        strip: bool,
    ) -> None:
        """Send the request for ``target`` (the path and query on the engine, its base URL's path first) and relay
        the answer; a failure of the engine or the link raises GatewayError."""
        rid = facts.request_id.encode("latin-1")
        link = upstream.link
        answer: Answer | None = None
        try:
            answer = await link.send(facts.method, target, headers, body)
            facts.status = answer.status
            if facts.acct is not None and answer.content_type == b"text/event-stream" and answer.status < 400:
                await self._stream(answer, sink, facts, facts.acct, strip, rid)
            else:
                await self._whole(answer, sink, facts, rid)
        except LINK_ERRORS as exc:
            raise link_error(exc, upstream.base, sink.started) from None
        except EventTooLarge:
            raise engine_error(
                "upstream_too_large", upstream.base, f"sent an SSE line longer than {self._max_sse_line} bytes; the "
                "gateway stopped reading it (--max-sse-line-bytes).",
            ) from None  # fmt: skip
        except BodyTooLarge:
            raise engine_error(
                "upstream_too_large", upstream.base, f"answered with a body over {self._max_response} bytes; the "
                "gateway stopped reading it (--max-response-bytes).",
            ) from None  # fmt: skip
        finally:
            if answer is not None:
                link.release(answer)  # to the pool when its answer ended cleanly; closed otherwise (a cancel too)

    async def _stream(
        self, answer: Answer, sink: Sink, facts: RequestFacts, acct: CompletionAccounting, strip: bool, rid: bytes
    ) -> None:
        def answered() -> None:
            # The client has its answer: closing now (SDKs do, at [DONE]) is not a disconnect, even if the engine's
            # end of the body is still on its way.
            if sink.watching:
                sink.stop_watching()

        scanner = SSEScanner(acct.on_chunk, strip, self._max_sse_line, acct.on_plain_delta, answered)
        await sink.start(answer.status, client_headers(answer.headers, rid))
        # The scanner runs inside the engine connection's data_received: no task wake-up per event.
        await answer.relay(scanner.feed, sink.write_now, sink.send_body)
        tail = scanner.flush(time.perf_counter())
        if scanner.malformed:
            acct.anomalies.append("chunk")
        if acct.stream_error is not None:
            facts.fail("upstream_error", acct.stream_error)
        elif not scanner.done:
            raise engine_error("upstream_stream_broken", facts.upstream, "ended the stream before [DONE].")
        await sink.end(tail)

    async def _whole(self, answer: Answer, sink: Sink, facts: RequestFacts, rid: bytes) -> None:
        data = await answer.read_body(self._max_response)  # BodyTooLarge past --max-response-bytes
        if answer.status >= 400:
            facts.error_message = error_message_of(data)
            facts.error_type = engine_error_type(answer.status, facts.error_message)
            if facts.error_type == "engine_auth":
                raise engine_error(
                    "engine_auth", facts.upstream, f"refused the gateway's key ({answer.status}): set "
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
        headers = client_headers(answer.headers, rid)
        headers.append((b"content-length", str(len(data)).encode()))
        await sink.start(answer.status, headers)
        await sink.end(data)
