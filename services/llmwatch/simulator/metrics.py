"""Prometheus collectors built from metric_spec.VLLM_METRICS, bound once to (model_name, engine="0")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from llmwatch.simulator.metric_spec import FINISH_REASONS, SLEEP_STATES, VLLM_METRICS, histogram_buckets
from llmwatch.simulator.profiles import BLOCK_SIZE

Collector = Counter | Gauge | Histogram | Summary


def build_collectors(registry: CollectorRegistry, max_model_len: int) -> dict[str, Collector]:
    """One collector per spec entry, registered in ``registry`` (vLLM also exposes python/process metrics)."""
    collectors: dict[str, Collector] = {}
    for spec in VLLM_METRICS:
        kwargs: dict[str, Any] = {"labelnames": spec.labels, "registry": registry}
        if spec.type == "counter":
            collectors[spec.name] = Counter(spec.name, spec.documentation, **kwargs)
        elif spec.type == "gauge":
            collectors[spec.name] = Gauge(spec.name, spec.documentation, **kwargs)
        elif spec.type == "summary":
            collectors[spec.name] = Summary(spec.name, spec.documentation, **kwargs)
        else:
            buckets = histogram_buckets(spec, max_model_len)
            collectors[spec.name] = Histogram(spec.name, spec.documentation, buckets=buckets, **kwargs)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return collectors


def cache_config_labels(gpu_memory_utilization: float, num_gpu_blocks: int, override: int | None) -> dict[str, str]:
    """vllm:cache_config_info labels: str() of CacheConfig fields, as CacheConfig.metrics_info() renders them."""
    return {
        "block_size": str(BLOCK_SIZE),
        "gpu_memory_utilization": str(gpu_memory_utilization),
        "cache_dtype": "auto",
        "is_attention_free": "False",
        "num_gpu_blocks_override": str(override),
        "sliding_window": "None",
        "enable_prefix_caching": "True",
        "prefix_caching_hash_algo": "sha256",
        "num_gpu_blocks": str(num_gpu_blocks),
        "num_cpu_blocks": "None",
        "kv_cache_memory_bytes": "None",
        "engine": "0",
    }


@dataclass(frozen=True)
class FinishedStats:
    """What vLLM records when a request finishes (vllm/v1/metrics/stats.py FinishedRequestStats)."""

    reason: str
    e2e: float
    queued: float
    prefill: float
    inference: float
    decode: float
    prompt_tokens: int
    generation_tokens: int
    max_tokens_param: int | None


class EngineMetrics:
    """The vllm:* series one engine updates; every labelled child exists from the start, as in vLLM."""

    def __init__(self, collectors: dict[str, Collector], model_name: str, cache_info: dict[str, str]) -> None:
        self.c = collectors
        lv = (model_name, "0")
        self.running = self._child("vllm:num_requests_running", lv)
        self.waiting = self._child("vllm:num_requests_waiting", lv)
        self.kv_usage = self._child("vllm:kv_cache_usage_perc", lv)
        for state in SLEEP_STATES:
            self._child("vllm:engine_sleep_state", (*lv, state)).set(1 if state == "awake" else 0)
        info: Any = self.c["vllm:cache_config_info"]
        info.labels(**cache_info).set(1)
        for name in (
            "vllm:prefix_cache_queries",
            "vllm:prefix_cache_hits",
            "vllm:prompt_tokens_cached",
            "vllm:prompt_tokens_recomputed",
        ):
            self._child(name, lv)
        self.preemptions = self._child("vllm:num_preemptions", lv)
        self.prompt_tokens = self._child("vllm:prompt_tokens", lv)
        self.generation_tokens = self._child("vllm:generation_tokens", lv)
        self.success = {r: self._child("vllm:request_success", (*lv, r)) for r in FINISH_REASONS}
        self.h = {
            spec.name: self._child(spec.name, lv)
            for spec in VLLM_METRICS
            if spec.type == "histogram" and spec.name.startswith("vllm:")
        }
        self.ttft = self.h["vllm:time_to_first_token_seconds"]
        self.itl = self.h["vllm:inter_token_latency_seconds"]

    def _child(self, name: str, values: tuple[str, ...]) -> Any:
        return self.c[name].labels(*values)

    def scheduler_state(self, running: int, waiting: int, kv_usage: float) -> None:
        self.running.set(running)
        self.waiting.set(waiting)
        self.kv_usage.set(kv_usage)

    def iteration(self, prompt_tokens: int, generation_tokens: int, preemptions: int) -> None:
        if preemptions:
            self.preemptions.inc(preemptions)
        if prompt_tokens:
            self.prompt_tokens.inc(prompt_tokens)
        if generation_tokens:
            self.generation_tokens.inc(generation_tokens)
        if prompt_tokens or generation_tokens:
            self.h["vllm:iteration_tokens_total"].observe(prompt_tokens + generation_tokens)

    def first_token(self, ttft: float, max_tokens: int) -> None:
        self.ttft.observe(ttft)
        self.h["vllm:request_params_n"].observe(1)
        self.h["vllm:request_max_num_generation_tokens"].observe(max_tokens)

    def finished(self, s: FinishedStats) -> None:
        self.success[s.reason].inc()
        h = self.h
        h["vllm:e2e_request_latency_seconds"].observe(s.e2e)
        h["vllm:request_queue_time_seconds"].observe(s.queued)
        h["vllm:request_prefill_time_seconds"].observe(s.prefill)
        h["vllm:request_inference_time_seconds"].observe(s.inference)
        h["vllm:request_decode_time_seconds"].observe(s.decode)
        h["vllm:request_prefill_kv_computed_tokens"].observe(s.prompt_tokens)
        h["vllm:request_prompt_tokens"].observe(s.prompt_tokens)
        h["vllm:request_generation_tokens"].observe(s.generation_tokens)
        per_token = s.decode / (s.generation_tokens - 1) if s.generation_tokens > 1 else 0.0
        h["vllm:request_time_per_output_token_seconds"].observe(per_token)
        if s.max_tokens_param:
            h["vllm:request_params_max_tokens"].observe(s.max_tokens_param)
