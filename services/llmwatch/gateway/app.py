"""Wiring only: the engine routes as plain ASGI, everything else (health, metrics, docs) as a small FastAPI app."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from llmwatch import __version__
from llmwatch.gateway.access_log import AccessLog
from llmwatch.gateway.metrics import GatewayMetrics
from llmwatch.gateway.proxy import Proxy
from llmwatch.gateway.recorder import OutcomeRecorder
from llmwatch.gateway.relay import Relay
from llmwatch.gateway.settings import GatewayConfig
from llmwatch.gateway.upstreams import UpstreamPool, WarmUp
from llmwatch.gateway.warmup import Warmer

MANAGEMENT_PATHS = frozenset({"/healthz", "/readyz", "/health", "/metrics", "/docs", "/openapi.json"})
# With --metrics-port these two move to that listener; without --docs the OpenAPI pages are not served at all.
LISTENER_PATHS = frozenset({"/readyz", "/metrics"})
DOCS_PATHS = frozenset({"/docs", "/openapi.json"})


def management_paths(metrics_port: int | None, docs: bool) -> frozenset[str]:
    """The management routes the API port serves; every other path is the proxy's (allow-list, key, a line)."""
    paths = MANAGEMENT_PATHS - (LISTENER_PATHS if metrics_port is not None else frozenset())
    return paths if docs else paths - DOCS_PATHS


def exposition(registry: CollectorRegistry, accept: str | None) -> Response:
    """The registry in the format the scraper asked for: OpenMetrics (with exemplars) or the plain text format."""
    encoder, content_type = choose_encoder(accept or "")
    return Response(encoder(registry), media_type=content_type)


class GatewayApp:
    """The ASGI entry point: dispatches on path before any framework code runs."""

    def __init__(
        self,
        proxy: Proxy,
        management: FastAPI,
        pool: UpstreamPool,
        log: AccessLog,
        warm_up: WarmUp | None,
        metrics: GatewayMetrics,
        paths: frozenset[str] = MANAGEMENT_PATHS,
    ) -> None:
        self.proxy = proxy
        self.management_paths = paths
        self.metrics = metrics
        self.management = management
        self.pool = pool
        self._log = log
        self._warm_up = warm_up

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in self.management_paths:
            await self.proxy(scope, receive, send)
        else:
            await self.management(scope, receive, send)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the access-log writer and the upstream probes; on exit every accepted line is on disk."""
        self._log.start()
        await self.pool.start(self._warm_up)
        try:
            yield
        finally:
            await self.pool.close()
            self._log.stop()


def create_app(
    config: GatewayConfig, registry: CollectorRegistry | None = None, access_log: AccessLog | None = None
) -> GatewayApp:
    registry = registry if registry is not None else CollectorRegistry()
    metrics = GatewayMetrics(registry)
    a = config.access_log
    log = access_log or AccessLog(
        a.file, a.max_bytes, a.backup_count, sys.stdout if a.stdout else None, a.max_queued_bytes,
        lambda reason, lines: metrics.log_lines_dropped.labels(reason).inc(lines),
    )  # fmt: skip
    pool = UpstreamPool(config.pool, metrics)
    reporter = OutcomeRecorder(metrics, log, pool, config.content_chars)
    relay = Relay(config.max_response_bytes, config.max_sse_line_bytes)
    warm_up = None
    if config.warmup_requests or config.warmup_batch:
        auth = config.pool.upstream_auth
        warm_up = Warmer(
            config.warmup_requests, config.warmup_batch, config.warmup_timeout, relay, reporter, metrics, auth
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with app.running():
            yield

    management = FastAPI(
        title="llmwatch gateway", version=__version__, lifespan=lifespan, redoc_url=None,
        docs_url="/docs" if config.docs else None, openapi_url="/openapi.json" if config.docs else None,
    )  # fmt: skip

    @management.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The gateway process is alive."""
        return {"status": "ok"}

    if config.metrics_port is None:
        add_listener_routes(management, registry, pool)

    @management.get("/health")
    async def health() -> Response:
        """vLLM-compatible: 200 with an empty body only while an upstream is ready."""
        return Response(status_code=200 if pool.ready else 503)

    paths = management_paths(config.metrics_port, config.docs)
    proxy = Proxy(config.proxy, pool, relay, reporter, metrics)
    app = GatewayApp(proxy, management, pool, log, warm_up, metrics, paths)
    return app


def add_listener_routes(app: FastAPI, registry: CollectorRegistry, pool: UpstreamPool) -> None:
    """GET /metrics and GET /readyz: on the API port, or alone on --metrics-port."""

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, Any]:
        """At least one upstream answered its last /health probe and has finished its warm-up."""
        response.status_code = 200 if pool.ready else 503
        # By position, as --upstream lists them: engine URLs are the operator's, not the caller's.
        upstreams = [{"healthy": u.healthy, "warm": u.warm} for u in pool.upstreams]
        return {"ready": pool.ready, "upstreams": upstreams}

    @app.get("/metrics")
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus exposition of the gateway's metrics (OpenMetrics with exemplars when asked for)."""
        return exposition(registry, request.headers.get("accept"))


def listener_app(registry: CollectorRegistry, pool: UpstreamPool) -> FastAPI:
    """--metrics-port: GET /metrics and GET /readyz alone, so a NetworkPolicy can open them to Prometheus and the
    probes and nothing else."""
    app = FastAPI(title="llmwatch gateway metrics", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip
    add_listener_routes(app, registry, pool)
    return app
