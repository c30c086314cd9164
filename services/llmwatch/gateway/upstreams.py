"""Upstream engines: one pool of connections each (engine_link.py), least-in-flight choice, background /health
probes through that same pool, and warm-up (when configured) each time one turns healthy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import orjson

from llmwatch.gateway.engine_answer import BodyTooLarge
from llmwatch.gateway.engine_link import EngineLink
from llmwatch.gateway.link_errors import LinkError
from llmwatch.gateway.metrics import GatewayMetrics
from llmwatch.gateway.settings import PoolConfig

log = logging.getLogger(__name__)

MAX_PROBE_BYTES = 1024 * 1024  # a /health or /v1/models answer larger than this fails the probe


class Upstream:
    __slots__ = ("base", "healthy", "in_flight", "link", "models", "probed", "warm", "warming")

    def __init__(self, base: str, link: EngineLink) -> None:
        self.base = base.rstrip("/")
        self.link = link
        self.in_flight = 0
        self.healthy = True  # optimistic until the first probe says otherwise
        self.probed = False
        self.warm = True  # False while the gateway's warm-up requests run (--warmup)
        self.warming: asyncio.Task[None] | None = None
        self.models: set[str] = set()

    @property
    def ready(self) -> bool:
        """Healthy and warmed up: takes user traffic."""
        return self.healthy and self.warm


# Runs the gateway's warm-up against an upstream that just turned healthy (see warmup.py).
WarmUp = Callable[[Upstream], Awaitable[None]]


class UpstreamPool:
    def __init__(self, config: PoolConfig, metrics: GatewayMetrics) -> None:
        self._bases = list(config.upstreams)
        self._metrics = metrics
        self._connect_timeout = config.connect_timeout
        self._read_timeout = config.read_timeout
        self._max_connections = config.max_connections
        self._health_interval = config.health_interval
        self._probe_headers = [("Authorization", config.upstream_auth)] if config.upstream_auth else []
        self.upstreams: list[Upstream] = []
        self._next = 0
        self._probe_task: asyncio.Task[None] | None = None
        self._warm_up: WarmUp | None = None

    async def start(self, warm_up: WarmUp | None = None) -> None:
        """Open a connection pool per upstream and start probing; ``warm_up`` runs each time one turns healthy."""
        self._warm_up = warm_up
        for base in self._bases:
            link = EngineLink(base, self._max_connections, self._connect_timeout, self._read_timeout)
            self.upstreams.append(Upstream(base, link))
        await self.probe_once()
        self._probe_task = asyncio.create_task(self._probe_forever(self._health_interval))

    async def close(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        for upstream in self.upstreams:
            if upstream.warming is not None:
                upstream.warming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await upstream.warming
            await upstream.link.close()

    def pick(self) -> Upstream:
        """The ready upstream with the fewest requests in flight; ties go round-robin."""
        ups = self.upstreams
        if len(ups) == 1:
            return ups[0]
        candidates = [u for u in ups if u.ready] or [u for u in ups if u.healthy] or ups
        start = self._next = (self._next + 1) % len(candidates)
        best = candidates[start]
        for i in range(1, len(candidates)):
            u = candidates[(start + i) % len(candidates)]
            if u.in_flight < best.in_flight:
                best = u
        return best

    @property
    def ready(self) -> bool:
        return any(u.ready for u in self.upstreams)

    def known_model(self, model: str) -> bool:
        return any(model in u.models for u in self.upstreams)

    async def probe_once(self) -> None:
        await asyncio.gather(*(self._probe(u) for u in self.upstreams))

    async def _probe_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.probe_once()

    async def _get(self, upstream: Upstream, path: str, headers: list[tuple[str, str]]) -> tuple[int, bytes]:
        """A probe's GET through the upstream's pool: its status and body, within max(1 s, the connect timeout)."""
        link = upstream.link
        async with asyncio.timeout(max(1.0, self._connect_timeout)):
            answer = await link.send("GET", link.prefix + path, headers, b"")
            try:
                return answer.status, await answer.read_body(MAX_PROBE_BYTES)
            finally:
                link.release(answer)

    async def _probe(self, upstream: Upstream) -> None:
        try:
            status, _ = await self._get(upstream, "/health", [])
            healthy = status == 200
            if healthy and not upstream.models:
                status, data = await self._get(upstream, "/v1/models", self._probe_headers)
                if status == 200:
                    body = orjson.loads(data)
                    upstream.models = {m["id"] for m in body.get("data", []) if isinstance(m, dict) and "id" in m}
                    for model in upstream.models:
                        self._metrics.prime(model)
        except (LinkError, BodyTooLarge, TimeoutError, ValueError, AttributeError, TypeError) as exc:
            log.debug("probe of %s failed: %s", upstream.base, exc)
            healthy = False
        if healthy != upstream.healthy:
            log.warning("upstream %s is now %s", upstream.base, "healthy" if healthy else "unhealthy")
        turned_healthy = healthy and (not upstream.healthy or not upstream.probed)
        upstream.healthy = healthy
        upstream.probed = True
        self._metrics.upstream_up.labels(upstream.base).set(1 if healthy else 0)
        if self._warm_up is not None and (turned_healthy or not healthy):
            if upstream.warming is not None:
                upstream.warming.cancel()
                upstream.warming = None
            upstream.warm = False
            if turned_healthy:
                upstream.warming = asyncio.create_task(self._warm(upstream, self._warm_up))

    async def _warm(self, upstream: Upstream, warm_up: WarmUp) -> None:
        await warm_up(upstream)
        upstream.warm = True
        upstream.warming = None
        log.info("upstream %s is warmed up and takes traffic", upstream.base)
