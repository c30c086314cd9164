"""What the proxy reads from a client's request before relaying it: the request id, the user, and a generation's body,
checked (what the gateway must know is valid) and prepared for the engine (usage asked for, so tokens are exact)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote

import orjson

from llmwatch.gateway.accounting import CompletionAccounting
from llmwatch.gateway.auth import ApiKey
from llmwatch.gateway.classify import json_format, last_user_text, offers_tools, request_kind
from llmwatch.gateway.errors import GatewayError
from llmwatch.gateway.facts import RequestFacts
from llmwatch.gateway.log_line import MAX_LOGGED_CHARS

MAX_REQUEST_ID = 128  # a client's X-Request-Id is taken only if printable ASCII and at most this long
_PRINTABLE = frozenset(range(0x20, 0x7F))


def request_id(sent: bytes | None, facts: RequestFacts) -> str:
    """The client's X-Request-Id if printable ASCII and short enough, else a new one (the client's, cut, is
    logged apart): an id that reaches the engine, the log and the response the same everywhere."""
    if sent:
        rid = sent.strip()
        if 0 < len(rid) <= MAX_REQUEST_ID and _PRINTABLE.issuperset(rid):
            return rid.decode("ascii")
        facts.client_request_id = sent[:MAX_REQUEST_ID].decode("latin-1")
    return os.urandom(16).hex()  # uuid4().hex sans UUID object


def prepare_generation(
    body: bytes, facts: RequestFacts, h: dict[bytes, bytes], keep_text: bool, always_usage: bool
) -> tuple[bytes, bool]:
    """(the body for the engine, whether to strip the usage chunk the client did not ask for); fills ``facts``."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError("invalid_json", f"The request body is not valid JSON ({exc}).") from None
    if not isinstance(payload, dict):
        raise GatewayError("invalid_request", "The request body must be a JSON object.")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError("invalid_request", "Missing `model`: name the model to use (see GET /v1/models).", "model")
    facts.model = model[:MAX_LOGGED_CHARS]
    facts.stream = _flag(payload, "stream", "stream")
    options = payload.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise GatewayError("invalid_request", "`stream_options` must be an object or null.", "stream_options")
        _flag(options, "include_usage", "stream_options.include_usage")
    facts.kind = request_kind(payload, h.get(b"x-llmwatch-kind"))
    if keep_text:
        facts.prompt_text = last_user_text(payload)
    facts.tools_offered = offers_tools(payload)
    facts.response_format = json_format(payload)
    facts.acct = CompletionAccounting(keep_text, check_json=facts.response_format is not None)
    strip = False
    if facts.stream and not (options and options.get("include_usage") is True):
        # Ask for usage so token counts are exact; the client is spared the extra chunk unless configured.
        payload["stream_options"] = {**(options or {}), "include_usage": True}
        body = orjson.dumps(payload)
        strip = not always_usage
    return body, strip


def _flag(obj: dict[str, Any], name: str, param: str) -> bool:
    """A boolean request field: true, false or null (absent). Anything else is refused, as OpenAI's API does; an
    engine that reads "true" or 1 as true would otherwise stream what the gateway counts as not streamed."""
    value = obj.get(name)
    if value is None or isinstance(value, bool):
        return value is True
    raise GatewayError("invalid_request", f"`{param}` must be true, false or null, not {type(value).__name__}.", param)


def user_of(key: ApiKey | None, h: dict[bytes, bytes]) -> str | None:
    """The key decides the user; only a trusted forwarder (Open WebUI's key) may name the user it acts for."""
    if key is None:
        return None
    if key.forward_user:
        # Open WebUI percent-encodes the UTF-8 name ("Zo%C3%AB"); header values are latin-1 otherwise.
        return _unquoted(h.get(b"x-openwebui-user-name")) or header_text(h.get(b"x-openwebui-user-id")) or key.name
    return key.name


def header_text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace")[:200] if value else None


def _unquoted(value: bytes | None) -> str | None:
    return unquote(value.decode("latin-1"))[:200] if value else None
