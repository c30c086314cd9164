"""Warm-up: short generations sent to an engine that just turned healthy, before it takes user traffic.

The first requests after vLLM starts pay for CUDA graph capture and allocator warm-up; these requests pay instead.
Each one is logged (`kind: warmup`) and counted under that kind, apart from user traffic, and goes straight to the
upstream through the proxy's relay (relay.py: the same accounting, limits and error types), with no allow-list and no
client limits. Failures are retried until --warmup-timeout, after which the upstream
takes traffic anyway, with a warning and llmwatch_warmup_timeouts_total.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import orjson

from llmwatch.gateway.accounting import CompletionAccounting
from llmwatch.gateway.errors import GatewayError
from llmwatch.gateway.facts import RequestFacts
from llmwatch.gateway.metrics import GatewayMetrics
from llmwatch.gateway.recorder import OutcomeRecorder
from llmwatch.gateway.relay import Relay
from llmwatch.gateway.upstreams import Upstream

log = logging.getLogger(__name__)

PATH = "/v1/chat/completions"
PROMPT = "Warm-up: what is 1 + 1?"
MAX_TOKENS = 16
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


class Discard:
    """The relay's sink for an answer nobody reads: the warm-up only accounts and logs it."""

    def __init__(self) -> None:
        self.started = False

    @property
    def watching(self) -> bool:
        return False

    def stop_watching(self) -> None:
        pass

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True

    def write_now(self, body: bytes) -> bool:
        return True

    async def send_body(self, body: bytes) -> None:
        pass

    async def end(self, body: bytes = b"") -> None:
        pass


class Warmer:
    def __init__(
        self,
        requests: int,
        timeout: float,
        relay: Relay,
        reporter: OutcomeRecorder,
        metrics: GatewayMetrics,
        upstream_auth: str | None,
    ) -> None:
        self._requests = requests
        self._timeout = timeout
        self._relay = relay
        self._reporter = reporter
        self._metrics = metrics
        self._headers = [("Content-Type", "application/json")]
        if upstream_auth:
            self._headers.append(("Authorization", upstream_auth))

    async def __call__(self, upstream: Upstream) -> None:
        """Send the warm-up requests, retrying failures, within the timeout; returns when ready to serve."""
        deadline = time.monotonic() + self._timeout
        done = failures = 0
        while done < self._requests:
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning(
                    "warm-up of %s did not finish within %g s (%d of %d requests succeeded); sending it user traffic "
                    "anyway: check the engine's log, or raise --warmup-timeout",
                    upstream.base, self._timeout, done, self._requests,
                )  # fmt: skip
                self._metrics.warmup_timeouts.labels(upstream.base).inc()
                return
            try:
                ok = await asyncio.wait_for(self._one(upstream), left)
            except TimeoutError:
                continue  # the deadline check above reports it
            if ok:
                done += 1
            else:
                await asyncio.sleep(min(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)], max(0.0, left)))
                failures += 1

    async def _one(self, upstream: Upstream) -> bool:
        facts = RequestFacts("POST", PATH, time.perf_counter(), time.time())
        facts.request_id = "warmup-" + os.urandom(8).hex()
        facts.kind, facts.stream, facts.upstream = "warmup", True, upstream.base
        model = min(upstream.models) if upstream.models else None
        facts.model = model
        facts.acct = CompletionAccounting()
        payload = {
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": MAX_TOKENS,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if model is not None:
            payload["model"] = model
        headers = [*self._headers, ("X-Request-Id", facts.request_id)]
        try:
            target = upstream.link.prefix + PATH
            await self._relay.exchange(upstream, target, headers, orjson.dumps(payload), Discard(), facts, strip=False)
        except GatewayError as exc:
            facts.fail(exc.error_type, exc.log_message)
        except asyncio.CancelledError:
            facts.fail("client_disconnect", "warm-up cancelled: the upstream went away or the gateway stopped")
            raise
        finally:
            self._reporter.record(facts)
        return facts.error_type is None
