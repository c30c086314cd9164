"""The simulator's state: engine, metrics, faults and the per-request decisions shared by both endpoints."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge

from llmwatch.simulator.engine import Engine, EngineConfig
from llmwatch.simulator.faults import FORCE_HEADER, Decision, Faults, decide, parse_forced
from llmwatch.simulator.metrics import Collector, EngineMetrics, build_collectors, cache_config_labels
from llmwatch.simulator.protocol import ApiError, bad_request, check_lengths, check_model
from llmwatch.simulator.sequence import Listener, Sequence
from llmwatch.simulator.settings import SimSettings
from llmwatch.simulator.textgen import Generation
from llmwatch.simulator.wire import phrase
from llmwatch.vllm.gpus import GPUS

VLLM_VERSION = "0.33.0"
DEFAULT_SLOW_MS = 2000.0  # `X-Sim-Fault: slow` when no --ttft-delay-ms is set


class StartupError(RuntimeError):
    """The configuration cannot serve, as vLLM refuses to start."""


@dataclass(frozen=True)
class Plan:
    """What one request will produce: its tokens (already cut to the limit) and why it ends."""

    tokens: list[str]
    finish_reason: str
    think_end: int


class Simulator:
    def __init__(
        self, settings: SimSettings, registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        profile = GPUS[settings.gpu_profile]
        blocks = settings.num_gpu_blocks_override or profile.num_gpu_blocks(settings.gpu_memory_utilization)
        if blocks <= 0:
            raise StartupError(
                "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` "
                "when initializing the engine."
            )
        self.num_gpu_blocks = blocks
        self.collectors: dict[str, Collector] = build_collectors(registry, settings.max_model_len)
        # Not a vLLM series: lets rules and dashboards tell a simulated engine from a real one (no GPU to expect).
        Gauge(
            "llmwatch_sim_info", "1 while the engine is llmwatch's simulator.", ("gpu_profile",), registry=registry
        ).labels(settings.gpu_profile).set(1)
        cache_info = cache_config_labels(settings.gpu_memory_utilization, blocks, settings.num_gpu_blocks_override)
        self.metrics = EngineMetrics(self.collectors, settings.served_model_name, cache_info)
        self.faults = Faults.model_validate(settings.fault_values())
        config = EngineConfig(
            settings.max_num_seqs, settings.max_num_batched_tokens, blocks, settings.speed,
            settings.sampler_compile_ms / 1000.0,
        )  # fmt: skip
        self.engine = Engine(profile, config, self.metrics, lambda: self.faults, clock)
        self.rng = random.Random(settings.seed)
        self.ready_at = clock() + settings.startup_seconds
        self.admitted = 0

    @property
    def ready(self) -> bool:
        return self.clock() >= self.ready_at

    def admit(
        self, model: str | None, prompt_tokens: int, max_tokens: int | None, param: str, forced: str | None
    ) -> Decision:
        """vLLM's checks before scheduling, then the faults this request gets; ApiError when it is refused."""
        check_model(model, self.settings.served_model_name)
        check_lengths(prompt_tokens, max_tokens, param, self.settings.max_model_len)
        try:
            decision = decide(self.faults, self.rng, parse_forced(forced))
        except ValueError as exc:
            raise bad_request(str(exc), FORCE_HEADER) from exc
        if decision.error:
            status = self.faults.error_status
            raise ApiError(
                status, f"Injected fault ({FORCE_HEADER} or --error-rate): simulated {status}.", phrase(status)
            )
        return decision

    def request_base_id(self, header: str | None, body_id: str | None) -> str:
        """vLLM's _base_request_id: the X-Request-Id header, else the body's request_id, else a random uuid."""
        return header or body_id or uuid.uuid4().hex

    def plan(self, gen: Generation, prompt_tokens: int, max_tokens: int | None, empty: bool) -> Plan:
        if empty:
            return Plan([], "stop", gen.think_end)
        limit = self.settings.max_model_len - prompt_tokens
        if max_tokens is not None:
            limit = min(limit, max_tokens)
        if len(gen.tokens) > limit:
            return Plan(gen.tokens[:limit], "length", gen.think_end)
        return Plan(gen.tokens, "stop", gen.think_end)

    def sequence(
        self,
        request_id: str,
        prompt_tokens: int,
        plan: Plan,
        max_tokens: int | None,
        decision: Decision,
        listener: Listener,
        filtered: bool = False,
    ) -> Sequence:
        now = self.clock()
        faults = self.faults
        delay_ms = faults.ttft_delay_ms or (DEFAULT_SLOW_MS if decision.slow else 0.0)
        if decision.slow and faults.ttft_delay_ms:
            delay_ms *= 2
        seq = Sequence(
            request_id=request_id,
            prompt_tokens=prompt_tokens,
            tokens=plan.tokens,
            finish_reason=plan.finish_reason,
            listener=listener,
            arrival=now,
            max_tokens_param=max_tokens,
            not_before=now + delay_ms / 1000.0,
            filtered=filtered,
        )
        warmup = self.settings.warmup_requests
        if self.admitted < warmup:
            share = (warmup - self.admitted) / warmup
            seq.extra_prefill_s = self.settings.warmup_penalty_ms / 1000.0 * share / self.settings.speed
        self.admitted += 1
        middle = max(1, len(plan.tokens) // 2)
        if decision.stall and len(plan.tokens) > 1:
            seq.stall_at, seq.stall_seconds = middle, faults.stall_seconds
        if decision.drop and len(plan.tokens) > 1:
            seq.drop_at = middle
        return seq
