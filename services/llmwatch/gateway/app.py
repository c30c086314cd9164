"""Wiring only: the /v1/* proxy as plain ASGI, everything else (health, metrics, docs) as a small FastAPI app."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from llmwatch import __version__
from llmwatch.gateway.access_log import AccessLog
from llmwatch.gateway.auth import KeyRing, load_api_keys
from llmwatch.gateway.metrics import GatewayMetrics
from llmwatch.gateway.proxy import Proxy
from llmwatch.gateway.recorder import Recorder
from llmwatch.gateway.settings import GatewaySettings
from llmwatch.gateway.upstreams import UpstreamPool

MANAGEMENT_PATHS = frozenset({"/healthz", "/readyz", "/health", "/metrics", "/docs", "/openapi.json"})


class GatewayApp:
    """The ASGI entry point: dispatches on path before any framework code runs."""

    def __init__(self, proxy: Proxy, management: FastAPI) -> None:
        self.proxy = proxy
        self.management = management

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in MANAGEMENT_PATHS:
            await self.proxy(scope, receive, send)
        else:
            await self.management(scope, receive, send)


def create_app(
    settings: GatewaySettings, registry: CollectorRegistry | None = None, access_log: AccessLog | None = None
) -> GatewayApp:
    registry = registry if registry is not None else CollectorRegistry()
    metrics = GatewayMetrics(registry)
    log = access_log or AccessLog(
        settings.log_file,
        settings.log_max_bytes,
        settings.log_backup_count,
        sys.stdout if settings.log_stdout else None,
    )
    pool = UpstreamPool(
        settings.upstream, metrics, settings.connect_timeout, settings.read_timeout, settings.max_connections,
        settings.upstream_api_key,
    )  # fmt: skip
    keyring = KeyRing(load_api_keys(settings.api_keys)) if settings.api_keys else None
    recorder = Recorder(metrics, log, pool, settings.log_content_max_chars if settings.log_content else None)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.start()
        await pool.start(settings.health_interval)
        try:
            yield
        finally:
            await pool.close()
            log.stop()

    management = FastAPI(title="llmwatch gateway", version=__version__, lifespan=lifespan, redoc_url=None)

    @management.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The gateway process is alive."""
        return {"status": "ok"}

    @management.get("/readyz")
    async def readyz(response: Response) -> dict[str, Any]:
        """At least one upstream answered its last /health probe."""
        response.status_code = 200 if pool.ready else 503
        return {"ready": pool.ready, "upstreams": {u.base: u.healthy for u in pool.upstreams}}

    @management.get("/health")
    async def health() -> Response:
        """vLLM-compatible: 200 with an empty body only while an upstream is healthy."""
        return Response(status_code=200 if pool.ready else 503)

    @management.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus exposition of the gateway's metrics."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return GatewayApp(Proxy(settings, pool, recorder, metrics, keyring), management)
