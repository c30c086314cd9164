"""Background delivery with bounded exponential backoff: Alertmanager gets its answer at once, nothing is lost quietly.

Every attempt ends in a counted outcome and a log line (target name and reason, never a URL or secret).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from llmwatch.relay.metrics import RelayMetrics
from llmwatch.relay.render import Message
from llmwatch.relay.target import DeliveryError, Target

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): 2, 4, 8, ... capped."""
        return float(min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempt - 1)))


class Deliverer:
    def __init__(
        self,
        client: httpx.AsyncClient,
        metrics: RelayMetrics,
        policy: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._policy = policy
        self._sleep = sleep
        self._tasks: dict[asyncio.Task[bool], str] = {}

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def submit(self, target: Target, message: Message) -> None:
        """Start delivering in the background; the caller does not wait."""
        task = asyncio.create_task(self.deliver(target, message), name=f"relay-{target.name}")
        self._tasks[task] = target.name
        self._metrics.pending.inc()
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[bool]) -> None:
        self._tasks.pop(task, None)
        self._metrics.pending.dec()

    async def deliver(self, target: Target, message: Message) -> bool:
        """Try up to max_attempts times; True once delivered, False after giving up."""
        attempts = self._policy.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                await target.send(self._client, message)
            except DeliveryError as exc:
                reason = str(exc)
            except Exception as exc:  # a bug must not lose the alert silently; its text may hold a URL, so no text
                reason = f"unexpected {type(exc).__name__}"
            else:
                self._metrics.deliveries.labels(target.name, "success").inc()
                logger.info("delivered %r to %s (attempt %d)", message.title, target.name, attempt)
                return True
            if attempt == attempts:
                self._metrics.deliveries.labels(target.name, "failure").inc()
                logger.error(
                    "gave up delivering %r to %s after %d attempts: %s", message.title, target.name, attempt, reason
                )
                return False
            delay = self._policy.delay(attempt)
            self._metrics.deliveries.labels(target.name, "retry").inc()
            logger.warning(
                "delivery of %r to %s failed (attempt %d/%d): %s; retrying in %.1fs",
                message.title, target.name, attempt, attempts, reason, delay,
            )  # fmt: skip
            await self._sleep(delay)
        return False

    async def drain(self, grace_seconds: float) -> int:
        """Wait up to ``grace_seconds`` for pending deliveries, then cancel the rest; returns how many were dropped."""
        if not self._tasks:
            return 0
        _, unfinished = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in unfinished:
            name = self._tasks.get(task, "?")
            self._metrics.deliveries.labels(name, "dropped").inc()
            logger.error("relay stopping: dropped an undelivered message for %s", name)
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        return len(unfinished)
