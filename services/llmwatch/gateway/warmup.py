"""Warm-up: short generations sent to an engine that just turned healthy, before it takes user traffic.

The first requests after vLLM starts pay for CUDA graph capture and allocator warm-up; these requests pay instead.
Each one is logged (`kind: warmup`) and counted under that kind, apart from user traffic, and goes straight to the
upstream through the proxy's relay (relay.py: the same accounting, limits and error types), with no allow-list and no
client limits. Failures are retried until --warmup-timeout, after which the upstream
takes traffic anyway, with a warning and llmwatch_warmup_timeouts_total.

Then --warmup-batch requests at once, sampled as R1 is (top-p): vLLM filters top-p/top-k with a Triton kernel once 8
or more rows are sampled together (vllm/v1/sample/ops/topk_topp_sampler.py, 0.26.0), compiled at its first use. On
the lent H100 that compile stalled every stream for 2.1 s, the first time eight users overlapped. The batch's answers
end one token apart (MAX_TOKENS + i), so the batch shrinks through every size on its way down: Triton compiles one
variant for sizes divisible by 16 and one for the rest, and 17 requests meet both. A batch request is not retried:
the sequential ones already showed the engine answers.
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
from llmwatch.vllm.model import R1_SAMPLING

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
        batch: int,
        timeout: float,
        relay: Relay,
        reporter: OutcomeRecorder,
        metrics: GatewayMetrics,
        upstream_auth: str | None,
    ) -> None:
        self._requests = requests
        self._batch = batch
        self._timeout = timeout
        self._relay = relay
        self._reporter = reporter
        self._metrics = metrics
        self._headers = [("Content-Type", "application/json")]
        if upstream_auth:
            self._headers.append(("Authorization", upstream_auth))

    async def __call__(self, upstream: Upstream) -> None:
        """Send the warm-up requests, retrying failures, then the batch, within the timeout; returns when ready to
        serve."""
        deadline = time.monotonic() + self._timeout
        done = failures = 0
        while done < self._requests:
            left = deadline - time.monotonic()
            if left <= 0:
                self._timed_out(upstream, f"{done} of {self._requests} requests succeeded")
                return
            try:
                ok = await asyncio.wait_for(self._one(upstream, {"max_tokens": MAX_TOKENS}), left)
            except TimeoutError:
                continue  # the deadline check above reports it
            if ok:
                done += 1
            else:
                await asyncio.sleep(min(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)], max(0.0, left)))
                failures += 1
        if self._batch:
            batch = [self._one(upstream, {"max_tokens": MAX_TOKENS + i, **R1_SAMPLING}) for i in range(self._batch)]
            try:
                await asyncio.wait_for(asyncio.gather(*batch), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self._timed_out(upstream, f"the batch of {self._batch} did not end")

    def _timed_out(self, upstream: Upstream, how_far: str) -> None:
        log.warning(
            "warm-up of %s did not finish within %g s (%s); sending it user traffic anyway: check the engine's log, "
            "or raise --warmup-timeout", upstream.base, self._timeout, how_far,
        )  # fmt: skip
        self._metrics.warmup_timeouts.labels(upstream.base).inc()

    async def _one(self, upstream: Upstream, fields: dict[str, float]) -> bool:
        facts = RequestFacts("POST", PATH, time.perf_counter(), time.time())
        facts.request_id = "warmup-" + os.urandom(8).hex()
        facts.kind, facts.stream, facts.upstream = "warmup", True, upstream.base
        model = min(upstream.models) if upstream.models else None
        facts.model = model
        facts.acct = CompletionAccounting()
        payload = {
            "messages": [{"role": "user", "content": PROMPT}],
            **fields,
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
