"""Wiring only: the aiohttp application, its routes and middleware, and the engine task's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from llmwatch.simulator.api import Routes
from llmwatch.simulator.instrumentator import instrumentation
from llmwatch.simulator.settings import SimSettings
from llmwatch.simulator.simulator import Simulator


def build_app(settings: SimSettings, registry: CollectorRegistry | None = None) -> tuple[web.Application, Simulator]:
    """The application and its simulator; ``registry`` is injectable so tests read fresh metrics."""
    registry = registry if registry is not None else CollectorRegistry()
    sim = Simulator(settings, registry)
    app = web.Application(middlewares=[instrumentation(sim.collectors)], client_max_size=64 * 1024 * 1024)
    Routes(sim, registry).add_to(app, settings.enable_admin)

    async def engine_lifetime(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sim.engine.run(), name="sim-engine")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(engine_lifetime)
    return app, sim
