"""The gateway and the simulator in the test's own event loop: no subprocesses, an injected registry and access log.

The gateway is driven through httpx.ASGITransport or raw ASGI calls; the simulator (or a scripted aiohttp app)
listens on a real 127.0.0.1 socket, since the gateway talks to its upstream over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from aiohttp import web
from prometheus_client import CollectorRegistry

from llmwatch.gateway.app import GatewayApp, create_app
from llmwatch.gateway.settings import GatewaySettings
from llmwatch.simulator.app import build_app
from llmwatch.simulator.settings import SimSettings
from llmwatch.simulator.simulator import Simulator
from tests.support import free_port

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
T = TypeVar("T")


class ListLog:
    """An AccessLog that keeps lines in memory (same interface: start, stop, write)."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def write(self, line: dict[str, Any]) -> None:
        self.lines.append(line)


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """An aiohttp app on a free 127.0.0.1 port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def simulator(
    received: list[tuple[str, str]] | None = None, **overrides: Any
) -> AsyncIterator[tuple[str, Simulator]]:
    """A fast simulator (H100 profile, no cold start or warm-up penalty, R1 reasoning parser) and its URL.

    With ``received``, every request it gets is appended as (method, raw path with query): what reached the engine.
    """
    defaults: dict[str, Any] = {"startup_seconds": 0, "warmup_requests": 0, "gpu_profile": "h100", "speed": 20.0,
                                "reasoning_parser": "deepseek_r1"}  # fmt: skip
    settings = SimSettings(**{**defaults, **overrides})
    app, sim = build_app(settings, CollectorRegistry())
    if received is not None:

        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            received.append((request.method, request.raw_path))
            response: web.StreamResponse = await handler(request)
            return response

        app.middlewares.insert(0, record)
    async with serving(app) as url:
        yield url, sim


@dataclass
class InProcessGateway:
    app: GatewayApp
    registry: CollectorRegistry
    log: ListLog
    client: httpx.AsyncClient
    seen: int = field(default=0)

    def sample(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        total = 0.0
        for metric in self.registry.collect():
            for s in metric.samples:
                if s.name == name and labels.items() <= s.labels.items():
                    total += s.value
        return total

    def new_lines(self) -> list[dict[str, Any]]:
        """The lines written since the last call."""
        lines, self.seen = self.log.lines[self.seen :], len(self.log.lines)
        return lines


@contextlib.asynccontextmanager
async def gateway(upstream: str, **flags: Any) -> AsyncIterator[InProcessGateway]:
    """The gateway app with ``flags`` (GatewaySettings fields), running, behind an httpx client."""
    settings = GatewaySettings(upstream=[upstream], log_stdout=False, health_interval=0.2, **flags)
    registry, log = CollectorRegistry(), ListLog()
    app = create_app(settings.load(), registry, log)  # type: ignore[arg-type]
    async with app.running():
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as client:
            yield InProcessGateway(app, registry, log, client)


class LoopThread:
    """An event loop in a background thread, for synchronous callers (hypothesis) of async fixtures."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()
        self._stack = contextlib.AsyncExitStack()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def enter(self, manager: contextlib.AbstractAsyncContextManager[T]) -> T:
        return self.run(self._stack.enter_async_context(manager))

    def close(self) -> None:
        self.run(self._stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def eventually(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``check`` in the running loop until it is true; fail naming ``what`` after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)
