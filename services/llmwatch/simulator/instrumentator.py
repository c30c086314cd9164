"""http_* metrics as prometheus-fastapi-instrumentator records them for vLLM (its default metric set)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import Counter, Histogram, Summary

from llmwatch.simulator.metrics import Collector

# vLLM's Instrumentator(excluded_handlers=[...]) in vllm/entrypoints/serve/instrumentator/metrics.py
EXCLUDED = frozenset({"/metrics", "/health", "/load", "/ping", "/version", "/server_info"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _handler_label(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    # unmatched paths are labelled "none", as the instrumentator does with should_ignore_untemplated=False
    return resource.canonical if resource is not None and request.match_info.http_exception is None else "none"


def instrumentation(collectors: dict[str, Collector]) -> Middleware:
    total = cast(Counter, collectors["http_requests"])
    in_size = cast(Summary, collectors["http_request_size_bytes"])
    out_size = cast(Summary, collectors["http_response_size_bytes"])
    highr = cast(Histogram, collectors["http_request_duration_highr_seconds"])
    lowr = cast(Histogram, collectors["http_request_duration_seconds"])

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        label = _handler_label(request)
        if label in EXCLUDED:
            return await handler(request)
        start = time.perf_counter()
        status = 500
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            elapsed = time.perf_counter() - start
            total.labels(request.method, f"{str(status)[0]}xx", label).inc()
            in_size.labels(label).observe(int(request.headers.get("Content-Length", 0) or 0))
            length = response.content_length if response is not None else None
            out_size.labels(label).observe(length or 0)
            highr.observe(elapsed)
            lowr.labels(request.method, label).observe(elapsed)

    return middleware
