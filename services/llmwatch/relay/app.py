"""FastAPI wiring of `llmwatch relay`: routes only; parsing, rendering and delivery live in their own modules."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from llmwatch.config import explain
from llmwatch.openai_error import error_object
from llmwatch.relay.delivery import Deliverer
from llmwatch.relay.metrics import RelayMetrics
from llmwatch.relay.payload import Notification
from llmwatch.relay.render import Renderer
from llmwatch.relay.target import Target

logger = logging.getLogger(__name__)


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(error_object(message, "invalid_request_error", None, code), status_code=status)


def _explain(exc: ValidationError) -> str:
    return "; ".join(explain(exc, values=False)[:3])


def create_app(
    targets: Sequence[Target],
    deliverer: Deliverer,
    renderer: Renderer,
    metrics: RelayMetrics,
    registry: CollectorRegistry,
    shutdown_grace_seconds: float = 10.0,
) -> FastAPI:
    by_name = {target.name: target for target in targets}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await deliverer.drain(shutdown_grace_seconds)

    app = FastAPI(title="llmwatch relay", lifespan=lifespan)

    async def relay(request: Request, chosen: Sequence[Target]) -> JSONResponse:
        try:
            notification = Notification.model_validate_json(await request.body())
        except ValidationError as exc:
            metrics.notifications.labels("invalid").inc()
            logger.warning("rejected a payload that is not an Alertmanager webhook (v4): %s", _explain(exc))
            why = f"expected an Alertmanager webhook payload (version 4): {_explain(exc)}"
            return _error(400, why, "invalid_payload")
        message = renderer.render(notification)
        for target in chosen:
            deliverer.submit(target, message)
        metrics.notifications.labels("accepted").inc()
        return JSONResponse({"status": "accepted", "targets": [t.name for t in chosen]}, status_code=202)

    @app.post("/alertmanager", status_code=202)
    async def alertmanager(request: Request) -> JSONResponse:
        """Relay one Alertmanager notification to every configured target."""
        return await relay(request, targets)

    @app.post("/alertmanager/{target}", status_code=202)
    async def alertmanager_one(target: str, request: Request) -> JSONResponse:
        """Relay one Alertmanager notification to one target: dingtalk, wecom, feishu or log."""
        if target not in by_name:
            configured = ", ".join(by_name)
            return _error(404, f"target {target!r} is not configured here; configured: {configured}", "no_target")
        return await relay(request, [by_name[target]])

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        """Liveness, the configured targets and how many messages are still being delivered."""
        return {"status": "ok", "targets": list(by_name), "pending": deliverer.pending}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus exposition of the relay's metrics."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
