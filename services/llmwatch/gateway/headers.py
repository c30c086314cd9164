"""Which headers cross the gateway, in each direction."""

from __future__ import annotations

# Hop-by-hop (RFC 9110 7.6.1) plus what the gateway sets itself.
_DROP_REQUEST = frozenset(
    {b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade",
     b"proxy-authorization", b"proxy-connection", b"x-request-id"}
)  # fmt: skip
_DROP_RESPONSE = frozenset(
    {b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade",
     b"x-request-id", b"date", b"server"}
)  # fmt: skip


def upstream_headers(
    client: list[tuple[bytes, bytes]], request_id: str, drop_auth: bool, upstream_key: str | None, identity: bool
) -> list[tuple[str, str]]:
    """Headers for the upstream request. ``identity`` asks for an uncompressed body the gateway can read."""
    out: list[tuple[str, str]] = [("X-Request-Id", request_id)]
    has_auth = False
    for name, value in client:
        if name in _DROP_REQUEST or (identity and name == b"accept-encoding"):
            continue
        if name == b"authorization":
            if drop_auth:
                continue
            has_auth = True
        out.append((name.decode("latin-1"), value.decode("latin-1")))
    if upstream_key and not has_auth:
        out.append(("Authorization", f"Bearer {upstream_key}"))
    return out


def client_headers(upstream: list[tuple[bytes, bytes]], request_id: bytes) -> list[tuple[bytes, bytes]]:
    """Headers for the client's response: the upstream's, minus hop-by-hop, plus our X-Request-Id."""
    out = [(k.lower(), v) for k, v in upstream if k.lower() not in _DROP_RESPONSE]
    out.append((b"x-request-id", request_id))
    return out
