"""Upstream engines: one pooled aiohttp session each, least-in-flight choice, background /health probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import aiohttp

from llmwatch.gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)


class Upstream:
    __slots__ = ("base", "healthy", "in_flight", "models", "session")

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base.rstrip("/")
        self.session = session
        self.in_flight = 0
        self.healthy = True  # optimistic until the first probe says otherwise
        self.models: set[str] = set()


class UpstreamPool:
    def __init__(
        self,
        bases: Iterable[str],
        metrics: GatewayMetrics,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int = 1024,
        api_key: str | None = None,
    ) -> None:
        self._bases = [b.rstrip("/") for b in bases]
        if not self._bases:
            raise ValueError("at least one --upstream is required")
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout)
        self._max_connections = max_connections
        self._probe_headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.upstreams: list[Upstream] = []
        self._next = 0
        self._probe_task: asyncio.Task[None] | None = None

    async def start(self, health_interval: float) -> None:
        for base in self._bases:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=60, ttl_dns_cache=60)
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            )
            self.upstreams.append(Upstream(base, session))
        await self.probe_once()
        self._probe_task = asyncio.create_task(self._probe_forever(health_interval))

    async def close(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        for upstream in self.upstreams:
            await upstream.session.close()

    def pick(self) -> Upstream:
        """The healthy upstream with the fewest requests in flight; ties go round-robin."""
        ups = self.upstreams
        if len(ups) == 1:
            return ups[0]
        candidates = [u for u in ups if u.healthy] or ups
        start = self._next = (self._next + 1) % len(candidates)
        best = candidates[start]
        for i in range(1, len(candidates)):
            u = candidates[(start + i) % len(candidates)]
            if u.in_flight < best.in_flight:
                best = u
        return best

    @property
    def ready(self) -> bool:
        return any(u.healthy for u in self.upstreams)

    def known_model(self, model: str) -> bool:
        return any(model in u.models for u in self.upstreams)

    async def probe_once(self) -> None:
        await asyncio.gather(*(self._probe(u) for u in self.upstreams))

    async def _probe_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.probe_once()

    async def _probe(self, upstream: Upstream) -> None:
        timeout = aiohttp.ClientTimeout(total=max(1.0, self._timeout.connect or 1.0))
        try:
            async with upstream.session.get(upstream.base + "/health", timeout=timeout) as resp:
                healthy = resp.status == 200
            if healthy and not upstream.models:
                async with upstream.session.get(
                    upstream.base + "/v1/models", timeout=timeout, headers=self._probe_headers
                ) as resp:
                    if resp.status == 200:
                        body = await resp.json(content_type=None)
                        upstream.models = {m["id"] for m in body.get("data", []) if isinstance(m, dict) and "id" in m}
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.debug("probe of %s failed: %s", upstream.base, exc)
            healthy = False
        if healthy != upstream.healthy:
            log.warning("upstream %s is now %s", upstream.base, "healthy" if healthy else "unhealthy")
        upstream.healthy = healthy
        self._metrics.upstream_up.labels(upstream.base).set(1 if healthy else 0)
