"""Every `error_type` of the access log, in one table, and the gateway's own errors in the OpenAI envelope.

Each type carries the HTTP status the client gets, the OpenAI error `type`, and whether it is a failure of the
link to the engine (counted in llmwatch_upstream_errors_total, which the 5xx alert points operators to). The
access-log schema's enum is checked against this table by a test; docs/gateway.md explains each row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import orjson

from llmwatch.openai_error import error_body


@dataclass(frozen=True)
class ErrorType:
    status: int
    openai_type: str
    upstream_failure: bool = False


# The names, so that mypy catches a typo; ERRORS below has one row for each, in this order (a test holds them equal).
ErrorTypeName = Literal[
    "invalid_json", "invalid_request", "bad_path", "route_not_allowed", "method_not_allowed", "body_too_large",
    "body_timeout", "unauthorized", "concurrency_limit", "key_concurrency_limit", "stream_too_long",
    "client_disconnect", "context_length", "model_not_found", "engine_rejected", "engine_auth", "engine_overloaded",
    "upstream_error", "upstream_unreachable", "upstream_timeout", "upstream_disconnect", "upstream_stream_broken",
    "upstream_too_large", "internal_error",
]  # fmt: skip

_CLIENT = "invalid_request_error"
_UPSTREAM = "upstream_error"

ERRORS: dict[ErrorTypeName, ErrorType] = {
    # The client's request, refused by the gateway before it reaches the engine.
    "invalid_json": ErrorType(400, _CLIENT),
    "invalid_request": ErrorType(400, _CLIENT),
    "bad_path": ErrorType(400, _CLIENT),
    "route_not_allowed": ErrorType(404, _CLIENT),
    "method_not_allowed": ErrorType(405, _CLIENT),
    "body_too_large": ErrorType(413, _CLIENT),
    "body_timeout": ErrorType(408, _CLIENT),
    "unauthorized": ErrorType(401, "authentication_error"),
    "concurrency_limit": ErrorType(429, "rate_limit_error"),
    "key_concurrency_limit": ErrorType(429, "rate_limit_error"),
    "stream_too_long": ErrorType(504, "timeout_error"),
    # The client went away before the answer was complete (nginx's 499).
    "client_disconnect": ErrorType(499, _CLIENT),
    # The engine answered 4xx: the request's fault, not the engine's. Status and body pass through.
    "context_length": ErrorType(400, _CLIENT),
    "model_not_found": ErrorType(404, _CLIENT),
    "engine_rejected": ErrorType(400, _CLIENT),
    # The engine answered, but the gateway-engine link is misconfigured or the engine is saturated.
    "engine_auth": ErrorType(502, _UPSTREAM, upstream_failure=True),
    "engine_overloaded": ErrorType(429, _UPSTREAM, upstream_failure=True),
    # The engine failed: 5xx, an error event mid-stream, or no (complete) answer at all.
    "upstream_error": ErrorType(502, _UPSTREAM, upstream_failure=True),
    "upstream_unreachable": ErrorType(502, _UPSTREAM, upstream_failure=True),
    "upstream_timeout": ErrorType(504, _UPSTREAM, upstream_failure=True),
    "upstream_disconnect": ErrorType(502, _UPSTREAM, upstream_failure=True),
    "upstream_stream_broken": ErrorType(502, _UPSTREAM, upstream_failure=True),
    # The engine's answer ran past --max-response-bytes or --max-sse-line-bytes; the gateway stopped reading it.
    "upstream_too_large": ErrorType(502, _UPSTREAM, upstream_failure=True),
    # A bug in the gateway itself.
    "internal_error": ErrorType(500, "internal_error"),
}

# vLLM: "...the model's context length is only 4096 tokens..." / "max_tokens=...cannot be greater than
# max_model_len..."; llama.cpp: "the request exceeds the available context size, try increasing it".
_CONTEXT = re.compile(r"context length|context size|max_model_len|maximum context", re.IGNORECASE)


def engine_error_type(status: int, message: str | None) -> ErrorTypeName:
    """The error_type of an engine's own error answer (status >= 400), from its status and message."""
    if status >= 500:
        return "upstream_error"
    if status in (401, 403):
        return "engine_auth"
    if status == 429:
        return "engine_overloaded"
    if status == 404:
        return "model_not_found"
    if message is not None and _CONTEXT.search(message):
        return "context_length"
    return "engine_rejected"


class GatewayError(Exception):
    """A failure the gateway answers itself, with a message that says what to change; the status comes from ERRORS."""

    def __init__(
        self,
        error_type: ErrorTypeName,
        message: str,
        param: str | None = None,
        retry_after: int | None = None,
        log_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        # What the access log says: the client's message plus what only the operator may see (the engine's URL).
        self.log_message = log_message or message
        self.param = param
        self.retry_after = retry_after  # seconds, sent as Retry-After
        self.status = ERRORS[error_type].status

    def body(self) -> bytes:
        return error_body(self.message, ERRORS[self.error_type].openai_type, self.param, self.error_type)


def error_message_of(body: bytes, limit: int = 300) -> str | None:
    """The message of an upstream's error body (OpenAI or vLLM shape), for the access log."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:limit].decode("utf-8", "replace").strip()
        return text or None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:limit]
        if isinstance(data.get("message"), str):
            return str(data["message"])[:limit]
    return None
