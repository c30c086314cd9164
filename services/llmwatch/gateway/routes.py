"""What the gateway lets through to the engine: an allow-list of routes per method, matched on the raw path.

No normalise-then-allow: the path is taken as the client sent it (ASGI `raw_path`), refused outright if it holds
anything an upstream could resolve to another path (dot segments, encoded dots/slashes/backslashes, backslashes,
empty segments, `;` parameters, double encoding), and otherwise must equal an allowed route exactly. The gateway
forwards exactly the path it matched. docs/gateway.md, "What the gateway lets through", lists the rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The OpenAI routes a chat client needs; everything else is opened by the operator (--allow-route).
DEFAULT_ROUTES = (
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "GET /v1/models",
    "GET /v1/models/{id}",
)
# Bodies the gateway reads for token accounting (the others pass through as they are).
GENERATION_PATHS = frozenset({b"/v1/chat/completions", b"/v1/completions"})
ID = "{id}"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# %2e . / %2f / / %5c \ / %25 % (a second decoding would make any of them); any case.
_ENCODED_DANGER = re.compile(rb"%(2e|2f|5c|25)", re.IGNORECASE)
_BAD_ESCAPE = re.compile(rb"%(?![0-9a-fA-F]{2})")
_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")


class PathRefused(ValueError):
    """The raw path is not one the gateway forwards, whatever the route (a 400 `bad_path`)."""


@dataclass(frozen=True)
class Route:
    method: str
    path: bytes  # the literal part; with `tail`, the prefix before `{id}`
    tail: bool  # ends in `{id}`: one or more segments (model ids contain `/`)
    query: bool  # takes a query string

    def matches(self, path: bytes) -> bool:
        if self.tail:
            return path.startswith(self.path) and len(path) > len(self.path)
        return path == self.path


def parse_route(spec: str) -> Route:
    """`POST /v1/embeddings`, `GET /v1/files?` (takes a query), `GET /v1/models/{id}`; ValueError otherwise."""
    method, _, path = spec.strip().partition(" ")
    path = path.strip()
    query = path.endswith("?")
    path = path.removesuffix("?")
    tail = path.endswith("/" + ID)
    literal = path[: -len(ID)] if tail else path
    segments = literal.strip("/").split("/") if literal.strip("/") else []
    if (
        method.upper() not in _METHODS
        or not literal.startswith("/")
        or not segments
        or not all(_SEGMENT.match(s) and s not in (".", "..") for s in segments)
    ):
        raise ValueError(
            f"route {spec!r}: expected `METHOD /path` with a method ({', '.join(sorted(_METHODS))}) and a path "
            "of plain segments, optionally ending in /{id} or ?, e.g. `POST /v1/embeddings`"
        )
    return Route(method.upper(), literal.encode(), tail, query)


def parse_routes(extra: list[str]) -> list[Route]:
    return [parse_route(spec) for spec in (*DEFAULT_ROUTES, *extra)]


def check_raw_path(path: bytes) -> None:
    """Refuse what an upstream could read as another path; PathRefused says why."""
    if not path.startswith(b"/"):
        raise PathRefused("the path must start with /")
    if b"\\" in path:
        raise PathRefused("a backslash is not allowed in the path")
    if b";" in path:
        raise PathRefused("`;` parameters are not allowed in the path")
    if _ENCODED_DANGER.search(path):
        raise PathRefused("an encoded dot, slash, backslash or percent sign is not allowed in the path")
    if _BAD_ESCAPE.search(path):
        raise PathRefused("the path has a malformed %-escape")
    for segment in path[1:].split(b"/"):
        if segment in (b"", b".", b".."):
            raise PathRefused("empty, `.` and `..` path segments are not allowed")


class RouteTable:
    """The allowed routes; ``find`` answers with the route, or says whether the path is known for another method."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def find(self, method: str, path: bytes) -> tuple[Route | None, list[str]]:
        """(the route for ``method`` and ``path``, or None; the methods allowed on ``path``)."""
        allowed: list[str] = []
        for route in self.routes:
            if route.matches(path):
                if route.method == method:
                    return route, [method]
                allowed.append(route.method)
        return None, allowed

    def describe(self) -> list[str]:
        return [f"{r.method} {r.path.decode()}{ID if r.tail else ''}{'?' if r.query else ''}" for r in self.routes]
