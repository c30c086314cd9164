"""Prometheus collectors built from llmwatch.vllm.metrics.VLLM_METRICS, bound once to (model_name, engine="0")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from llmwatch.vllm.cache import BLOCK_SIZE
from llmwatch.vllm.metrics import CACHE_CONFIG_INFO, VLLM_METRICS
from llmwatch.vllm.spec import histogram_buckets

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


def cache_config_labels(
    gpu_memory_utilization: float, num_gpu_blocks: int, override: int | None, max_model_len: int | None = None
) -> dict[str, str]:
    """vllm:cache_config_info labels: str() of each CacheConfig attribute as the API server holds it once the
    engine is up (vLLM 0.33 defaults for a dense single-GPU model; the fields only the engine-core process
    fills, kv_cache_layout, hash_block_size and cache_hit_alignment_tokens, read None there)."""
    tokens = num_gpu_blocks * BLOCK_SIZE
    return {
        "block_size": str(BLOCK_SIZE),
        "user_specified_block_size": "False",
        "kv_cache_layout": "None",
        "prefix_match_unit": "None",
        "gpu_memory_utilization": str(gpu_memory_utilization),
        "cache_dtype": "auto",
        "is_attention_free": "False",
        "num_gpu_blocks_override": str(override),
        "sliding_window": "None",
        "enable_prefix_caching": "True",
        "prefix_caching_hash_algo": "sha256",
        "prefix_cache_retention_interval": "0",
        "kv_cache_dtype_skip_layers": "[]",
        "mamba_page_size_padded": "None",
        "skip_page_size_padded": "None",
        "mamba_block_size": "None",
        "mamba_cache_dtype": "auto",
        "mamba_ssm_cache_dtype": "auto",
        "mamba_cache_mode": "none",
        "enable_mamba_shared_prefix_checkpoint": "False",
        "replayssm_buffer_len": "16",
        "use_replayssm": "False",
        "use_kda_recoverssm": "False",
        "num_gpu_blocks": str(num_gpu_blocks),
        "num_cpu_blocks": "None",
        "simple_cpu_offload_num_blocks": "None",
        "effective_attention_block_size": str(BLOCK_SIZE),
        "kv_cache_size_tokens": str(tokens),
        "kv_cache_max_concurrency": str(tokens / max_model_len) if max_model_len else "None",
        "hash_block_size": "None",
        "cache_hit_alignment_tokens": "None",
        "kv_sharing_fast_prefill": "False",
        "swa_bounded_replay": "True",
        "kv_cache_memory_bytes": "None",
        "kv_offloading_size": "None",
        "kv_offloading_backend": "native",
        "_block_size_resolved": "True",
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
    preemptions: int = 0


class EngineMetrics:
    """The vllm:* series one engine updates; every labelled child exists from the start, as in vLLM.

    Series the simulator does not model (external and multi-modal caches, prefix-cache hits, admission limits,
    MFU estimates, deferred waiting) are created and stay at 0, as on a vLLM without those features."""

    def __init__(self, collectors: dict[str, Collector], model_name: str, cache_info: dict[str, str]) -> None:
        self.c = collectors
        fixed = {"model_name": model_name, "engine": "0"}
        one: dict[str, Any] = {}
        self.by: dict[str, dict[str, Any]] = {}
        for spec in VLLM_METRICS:
            if not spec.name.startswith("vllm:") or spec.name == CACHE_CONFIG_INFO:
                continue
            base = [fixed[label] for label in spec.labels if label in fixed]
            if spec.values:
                self.by[spec.name] = {v: self.c[spec.name].labels(*base, v) for v in spec.values}
            else:
                one[spec.name] = self.c[spec.name].labels(*base)
        info: Any = self.c[CACHE_CONFIG_INFO]
        info.labels(**cache_info).set(1)
        self.by["vllm:engine_sleep_state"]["awake"].set(1)
        self.running = one["vllm:num_requests_running"]
        self.waiting = one["vllm:num_requests_waiting"]
        self.waiting_capacity = self.by["vllm:num_requests_waiting_by_reason"]["capacity"]
        self.kv_usage = one["vllm:kv_cache_usage_perc"]
        self.preemptions = one["vllm:num_preemptions"]
        self.prompt_tokens = one["vllm:prompt_tokens"]
        self.computed_prompt_tokens = self.by["vllm:prompt_tokens_by_source"]["local_compute"]
        self.generation_tokens = one["vllm:generation_tokens"]
        self.success = self.by["vllm:request_success"]
        self.h = {spec.name: one[spec.name] for spec in VLLM_METRICS if spec.type == "histogram" and spec.name in one}
        self.ttft = self.h["vllm:time_to_first_token_seconds"]
        self.itl = self.h["vllm:inter_token_latency_seconds"]

    def scheduler_state(self, running: int, waiting: int, kv_usage: float) -> None:
        self.running.set(running)
        self.waiting.set(waiting)
        self.waiting_capacity.set(waiting)  # nothing is deferred: no LoRA budget, no KV transfer
        self.kv_usage.set(kv_usage)

    def iteration(self, prompt_tokens: int, generation_tokens: int, preemptions: int) -> None:
        if preemptions:
            self.preemptions.inc(preemptions)
        if prompt_tokens:
            self.prompt_tokens.inc(prompt_tokens)
            self.computed_prompt_tokens.inc(prompt_tokens)  # no prefix-cache hits modelled: all computed
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
        h["vllm:request_num_preemptions"].observe(s.preemptions)
        h["vllm:request_prefill_kv_computed_tokens"].observe(s.prompt_tokens)
        h["vllm:request_prompt_tokens"].observe(s.prompt_tokens)
        h["vllm:request_generation_tokens"].observe(s.generation_tokens)
        per_token = s.decode / (s.generation_tokens - 1) if s.generation_tokens > 1 else 0.0
        h["vllm:request_time_per_output_token_seconds"].observe(per_token)
        if s.max_tokens_param:
            h["vllm:request_params_max_tokens"].observe(s.max_tokens_param)
