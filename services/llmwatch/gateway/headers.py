"""Which headers cross the gateway, in each direction: allow-lists, as Envoy and nginx build proxied requests.

To the engine: what it needs to answer (content type, accept, user agent), the request id, the trace context, and
the engine key the gateway adds. Nothing the client says about itself (cookies, its key, forwarding headers, Open
WebUI's user headers) and no hop-by-hop header (RFC 9110 7.6.1), so also none that `Connection:` names. Back to the
client: the engine's content headers and the gateway's own.
"""

from __future__ import annotations

TO_ENGINE = frozenset({b"content-type", b"accept", b"user-agent", b"traceparent", b"tracestate"})
TO_CLIENT = frozenset({b"content-type", b"content-encoding", b"content-language", b"cache-control", b"retry-after"})


def upstream_headers(
    client: list[tuple[bytes, bytes]], request_id: str, upstream_auth: str | None, extra: frozenset[bytes] = frozenset()
) -> list[tuple[str, str]]:
    """Headers for the upstream request. ``upstream_auth`` is the whole Authorization value (`Bearer KEY`);
    ``extra`` names headers an operator chose to let through as well (--forward-header)."""
    out: list[tuple[str, str]] = [("X-Request-Id", request_id)]
    allowed = TO_ENGINE | extra if extra else TO_ENGINE
    hop = _named_by_connection(client)
    for name, value in client:
        if name in allowed and name not in hop:
            out.append((name.decode("latin-1"), value.decode("latin-1")))
    if upstream_auth:
        out.append(("Authorization", upstream_auth))
    return out


def _named_by_connection(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    named = [v for k, v in headers if k == b"connection"]
    if not named:
        return frozenset()
    return frozenset(token.strip().lower() for value in named for token in value.split(b","))


def client_headers(upstream: list[tuple[bytes, bytes]], request_id: bytes) -> list[tuple[bytes, bytes]]:
    """Headers for the client's response: the engine's content headers, plus our X-Request-Id."""
    out = [(k.lower(), v) for k, v in upstream if k.lower() in TO_CLIENT]
    out.append((b"x-request-id", request_id))
    return out
