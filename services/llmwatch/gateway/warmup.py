"""Warm-up: short generations sent to an engine that just turned healthy, before it takes user traffic.

The first requests after vLLM starts pay for CUDA graph capture and allocator warm-up; these requests pay instead.
Each one is logged (`kind: warmup`) and counted under that kind, apart from user traffic, and goes straight to the
upstream: no allow-list, no client limits. Failures are retried until --warmup-timeout, after which the upstream
takes traffic anyway, with a warning and llmwatch_warmup_timeouts_total.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import aiohttp
import orjson

from llmwatch.gateway.accounting import CompletionAccounting
from llmwatch.gateway.errors import engine_error_type, error_message_of
from llmwatch.gateway.facts import RequestFacts
from llmwatch.gateway.metrics import GatewayMetrics
from llmwatch.gateway.recorder import OutcomeRecorder
from llmwatch.gateway.sse import SSEScanner
from llmwatch.gateway.upstreams import Upstream

log = logging.getLogger(__name__)

PATH = "/v1/chat/completions"
PROMPT = "Warm-up: what is 1 + 1?"
MAX_TOKENS = 16
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


class Warmer:
    def __init__(
        self,
        requests: int,
        timeout: float,
        reporter: OutcomeRecorder,
        metrics: GatewayMetrics,
        upstream_auth: str | None,
    ) -> None:
        self._requests = requests
        self._timeout = timeout
        self._reporter = reporter
        self._metrics = metrics
        self._headers = {"Content-Type": "application/json"}
        if upstream_auth:
            self._headers["Authorization"] = upstream_auth

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
        acct = facts.acct = CompletionAccounting()
        payload = {
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": MAX_TOKENS,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if model is not None:
            payload["model"] = model
        headers = {**self._headers, "X-Request-Id": facts.request_id}
        try:
            async with upstream.session.post(upstream.base + PATH, data=orjson.dumps(payload), headers=headers) as resp:
                facts.status = resp.status
                if resp.status >= 400:
                    message = error_message_of(await resp.read())
                    facts.fail(engine_error_type(resp.status, message), resp.status, message)
                else:
                    scanner = SSEScanner(acct.on_chunk, strip_usage=False)
                    async for chunk in resp.content.iter_any():
                        scanner.feed(chunk, time.perf_counter())
                    scanner.flush()
                    if acct.stream_error is not None:
                        facts.fail("upstream_error", 502, acct.stream_error)
                    elif not scanner.done:
                        facts.fail("upstream_stream_broken", 502, "the engine ended the stream before [DONE]")
        except aiohttp.ClientConnectorError as exc:
            facts.fail("upstream_unreachable", 502, f"warm-up request failed: {exc.strerror}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            facts.fail("upstream_disconnect", 502, f"warm-up request failed: {type(exc).__name__}")
        except asyncio.CancelledError:
            facts.fail("client_disconnect", 499, "warm-up cancelled: the upstream went away or the gateway stopped")
            raise
        finally:
            acct.finish()
            self._reporter.record(facts)
        return facts.error_type is None
