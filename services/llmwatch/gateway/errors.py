"""Errors in the OpenAI envelope: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import orjson

# error_type (access log) -> (HTTP status, OpenAI error type)
ERRORS: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "invalid_request_error"),
    "invalid_request": (400, "invalid_request_error"),
    "body_too_large": (413, "invalid_request_error"),
    "unauthorized": (401, "authentication_error"),
    "not_found": (404, "invalid_request_error"),
    "upstream_unreachable": (502, "upstream_error"),
    "upstream_timeout": (504, "upstream_error"),
    "upstream_stream_broken": (502, "upstream_error"),
    "upstream_disconnect": (502, "upstream_error"),
    "internal_error": (500, "internal_error"),
}


class GatewayError(Exception):
    """A failure the gateway answers itself, with a message that says what to change."""

    def __init__(self, error_type: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.param = param
        self.status, self.openai_type = ERRORS[error_type]

    def body(self) -> bytes:
        return envelope(self.message, self.openai_type, self.param, self.error_type)


def envelope(message: str, type_: str, param: str | None, code: str | int | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


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
