"""The scheduler loop, modelled on vLLM v1: continuous batching, chunked prefill, recompute preemption.

Each step: running sequences first (a decode costs one token of the --max-num-batched-tokens budget, an
unfinished prefill takes what is left), then waiting ones in FIFO order while fewer than --max-num-seqs run
and KV blocks are free. A sequence that needs a new block when none is free preempts the newest running one
(its blocks are freed, it goes back to the head of the queue and later recomputes prompt + output).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from llmwatch.simulator.faults import Faults
from llmwatch.simulator.metrics import EngineMetrics, FinishedStats
from llmwatch.simulator.sequence import Sequence
from llmwatch.vllm.gpus import Gpu

log = logging.getLogger(__name__)
MAX_DEBT_S = 0.05  # when Python falls behind the modelled clock, forget debt beyond this instead of bursting
# vLLM 0.26's sampler filters top-p/top-k with a Triton kernel from this many rows on (topk_topp_sampler.py), and
# Triton compiles it apart for row counts divisible by 16.
FILTER_KERNEL_ROWS = 8
TRITON_DIVISIBILITY = 16
IDLE_POLL_S = 0.005


@dataclass(frozen=True)
class EngineConfig:
    max_num_seqs: int
    max_num_batched_tokens: int
    num_gpu_blocks: int
    speed: float = 1.0
    sampler_compile_s: float = 0.0  # --sampler-compile-ms


class Engine:
    def __init__(
        self,
        profile: Gpu,
        config: EngineConfig,
        metrics: EngineMetrics,
        faults: Callable[[], Faults],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self.config = config
        self.metrics = metrics
        self.faults = faults
        self.clock = clock
        self.free_blocks = config.num_gpu_blocks
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self._wake = asyncio.Event()
        self._compiled: set[bool] = set()  # the filter kernel's variants compiled so far (rows divisible by 16)

    def submit(self, seq: Sequence) -> None:
        seq.state = "waiting"
        self.waiting.append(seq)
        self._publish_state()
        self._wake.set()

    def abort(self, seq: Sequence) -> None:
        """Client went away: free the sequence at once, as vLLM aborts on disconnect."""
        if not seq.done.done():
            self._finish(seq, "abort", self.clock())

    async def run(self) -> None:
        t = self.clock()
        while True:
            if not self.running and not self.waiting:
                self._wake.clear()
                await self._wake.wait()
                t = self.clock()
            batch, extra = self._schedule(t)
            if not batch:
                await asyncio.sleep(IDLE_POLL_S)
                t = self.clock()
                continue
            context = sum(seq.computed + n for seq, n in batch)
            step = self.profile.step_seconds(sum(n for _, n in batch), context)
            extra += self._sampler_compile(batch)
            t += step * self.faults().latency_multiplier / self.config.speed + extra
            delay = t - self.clock()
            await asyncio.sleep(delay if delay > 0 else 0)
            now = self.clock()
            self._apply(batch, now)
            t = max(t, now - MAX_DEBT_S)

    def _schedule(self, now: float) -> tuple[list[tuple[Sequence, int]], float]:
        budget = self.config.max_num_batched_tokens
        batch: list[tuple[Sequence, int]] = []
        extra = 0.0
        preempted = False
        for seq in list(self.running):
            if seq.state != "running" or seq.stalled(now) or budget <= 0:
                continue
            n = min(seq.pending, budget)
            if not self._reserve(seq, n):
                preempted = True
                continue
            batch.append((seq, n))
            budget -= n
        if not preempted and self.waiting and len(self.running) < self.config.max_num_seqs:
            for seq in list(self.waiting):
                if len(self.running) >= self.config.max_num_seqs or budget <= 0:
                    break
                if seq.not_before > now:
                    continue
                n = min(seq.pending, budget)
                need = seq.blocks_for(n) - seq.blocks
                if need > self.free_blocks:
                    break
                self.waiting.remove(seq)
                self.running.append(seq)
                seq.state = "running"
                self.free_blocks -= need
                seq.blocks += need
                if seq.first_scheduled is None:
                    seq.first_scheduled = now
                batch.append((seq, n))
                budget -= n
        for seq, n in batch:
            if n == seq.pending and seq.extra_prefill_s:
                extra += seq.extra_prefill_s
                seq.extra_prefill_s = 0.0
        self._publish_state()
        return batch, extra

    def _sampler_compile(self, batch: list[tuple[Sequence, int]]) -> float:
        """Seconds this step spends compiling the sampler's filter kernel: the first time as many rows as make vLLM use
        it are sampled together, with at least one filtered, once per variant."""
        if not self.config.sampler_compile_s or len(self._compiled) == 2:  # off, or both variants compiled
            return 0.0
        sampled = [seq for seq, n in batch if n == seq.pending]  # a token is sampled for each of these
        variant = len(sampled) % TRITON_DIVISIBILITY == 0
        if len(sampled) < FILTER_KERNEL_ROWS or variant in self._compiled or not any(s.filtered for s in sampled):
            return 0.0
        self._compiled.add(variant)
        log.warning("Triton kernel JIT compilation during inference: _topk_topp_kernel (simulated, %d rows)",
                    len(sampled))  # fmt: skip
        return self.config.sampler_compile_s / self.config.speed

    def _reserve(self, seq: Sequence, n: int) -> bool:
        """Blocks for ``n`` more tokens of ``seq``, preempting the newest running sequences; False if ``seq``
        itself had to go."""
        need = seq.blocks_for(n) - seq.blocks
        while need > self.free_blocks:
            victim = self.running[-1]
            if victim is seq and len(self.running) == 1:
                self._finish(seq, "length", self.clock())  # cannot fit even alone: the cache is too small
                return False
            self._preempt(victim)
            if victim is seq:
                return False
        self.free_blocks -= need
        seq.blocks += need
        return True

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.free_blocks += seq.blocks
        seq.blocks = 0
        seq.computed = 0
        seq.state = "waiting"
        seq.preemptions += 1
        self.waiting.appendleft(seq)
        self.metrics.iteration(0, 0, 1)
        log.debug("preempted %s after %d tokens", seq.request_id, seq.generated)

    def _apply(self, batch: list[tuple[Sequence, int]], now: float) -> None:
        prompt_tokens = generated = 0
        for seq, n in batch:
            if seq.state != "running":
                continue
            seq.computed += n
            if seq.pending:
                continue  # prefill chunk, nothing sampled yet
            start = seq.generated
            if start < len(seq.tokens):
                seq.generated += 1
                generated += 1
                if start == 0:
                    prompt_tokens += seq.prompt_tokens
                    seq.first_token_at = now
                    self.metrics.first_token(now - seq.arrival, len(seq.tokens))
                else:
                    self.metrics.itl.observe(now - seq.last_token_at)
                seq.last_token_at = now
            finished = seq.generated >= len(seq.tokens)
            if not seq.listener.emit(seq, start, seq.generated, seq.finish_reason if finished else None):
                self._finish(seq, "abort", now)
            elif finished:
                self._finish(seq, seq.finish_reason, now)
            elif seq.drop_at is not None and seq.generated >= seq.drop_at:
                seq.listener.drop(seq)
                self._finish(seq, "abort", now)
            elif seq.stall_at is not None and seq.generated >= seq.stall_at:
                seq.stall_at = None
                seq.stall_until = now + seq.stall_seconds
        self.metrics.iteration(prompt_tokens, generated, 0)
        self._publish_state()

    def _finish(self, seq: Sequence, reason: str, now: float) -> None:
        if seq.state == "running":
            self.running.remove(seq)
        elif seq.state == "waiting":
            self.waiting.remove(seq)
        seq.state = "done"
        self.free_blocks += seq.blocks
        seq.blocks = 0
        scheduled = seq.first_scheduled if seq.first_scheduled is not None else now
        first = seq.first_token_at if seq.first_token_at is not None else now
        last = seq.last_token_at if seq.first_token_at is not None else now
        self.metrics.finished(
            FinishedStats(
                reason=reason,
                e2e=now - seq.arrival,
                queued=scheduled - seq.arrival,
                prefill=first - scheduled,
                inference=last - scheduled,
                decode=last - first,
                prompt_tokens=seq.prompt_tokens,
                generation_tokens=seq.generated,
                max_tokens_param=seq.max_tokens_param,
                preemptions=seq.preemptions,
            )
        )
        self._publish_state()
        seq.done.set_result(reason)

    def _publish_state(self) -> None:
        used = self.config.num_gpu_blocks - self.free_blocks
        usage = used / self.config.num_gpu_blocks if self.config.num_gpu_blocks else 0.0
        self.metrics.scheduler_state(len(self.running), len(self.waiting), usage)
