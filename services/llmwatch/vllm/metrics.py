"""Every metric a vLLM 0.33 API server exposes, in ONE place: the simulator builds its collectors from this list,
a test fails when the simulator's /metrics differs from it, and the dashboards, alert rules and doctor queries are
checked against its names.

Reference: the vLLM 0.33.0 wheel (vllm-0.33.0-cp38-abi3-manylinux_2_28_x86_64.whl), files
- `vllm/v1/metrics/loggers.py`: PrometheusStatLogger.__init__ (names, types, help texts, labels, the label
  values created at start) and log_metrics_info (vllm:cache_config_info);
- `vllm/v1/metrics/perf.py`: PerfMetricsProm, whose three vllm:estimated_* counters are registered on every
  start; only `--enable-mfu-metrics` makes them move;
- `vllm/v1/metrics/buckets.py`: the bucket lists;
- `vllm/v1/metrics/stats.py` (PromptTokenStats.ALL_SOURCES), `vllm/v1/metrics/cache_hit_source.py`
  (CacheHitSource) and `vllm/v1/engine/__init__.py` (FINISH_REASON_STRINGS): label values;
- `vllm/config/cache.py`: CacheConfig.metrics_info() makes every CacheConfig attribute a label of
  vllm:cache_config_info, and log_metrics_info adds `engine`;
- `vllm/entrypoints/serve/instrumentator/metrics.py`: the http_* families are prometheus-fastapi-instrumentator's
  defaults, with /metrics, /health, /load, /ping, /version and /server_info excluded.

Listed: what vLLM 0.33 registers on a single-GPU, text-only `vllm serve` with no LoRA, no speculative decoding
and no KV connector. Left out, with what registers them:
- vllm:spec_decode_* (`--speculative-config`), vllm:diffusion_* (diffusion models);
- vllm:lora_requests_info (`--enable-lora`);
- vllm:num_requests_kv_fetch_by_stage (a KV-consumer `--kv-transfer-config`) and each KV connector's or KV
  offloading's own families: nixl_*, mooncake_*, kv_offload_*, simple_kv_offload_*, hisparse_*, umbp_*
  (`--kv-transfer-config`, `--kv-offloading-size`); EC connector families (`--ec-transfer-config`);
- vllm:kv_block_lifetime_seconds, vllm:kv_block_idle_before_evict_seconds, vllm:kv_block_reuse_gap_seconds
  (`--kv-cache-metrics`);
- vllm:corrupted_requests (VLLM_COMPUTE_NANS_IN_LOGITS=1); vllm:watermark_requests (a watermark config);
- vllm:tool_call_parser_invocations (`--tool-call-parser`, vllm/parser/metrics.py);
- vllm:websocket_connection* (models with the "realtime" task, vllm/entrypoints/serve/middleware/register.py);
- vllm:sleep_mode_operation_* and vllm:rl_weight_update_* (created on the first call of the dev-mode sleep
  endpoints or the RL weight-transfer endpoints).
vllm:prompt_tokens_recomputed, vllm:gpu_cache_usage_perc and vllm:time_per_output_token_seconds are not in
0.33 and must never appear.

The MetricSpec shape is in spec.py, the http_* families in http_metrics.py.
"""

from __future__ import annotations

from llmwatch.vllm.buckets import (
    INTER_TOKEN_LATENCY_BUCKETS,
    ITERATION_TOKENS_BUCKETS,
    REQUEST_LATENCY_BUCKETS,
    REQUEST_NUM_PREEMPTIONS_BUCKETS,
    REQUEST_PARAMS_N_BUCKETS,
    TIME_TO_FIRST_TOKEN_BUCKETS,
)
from llmwatch.vllm.http_metrics import HTTP_METRICS
from llmwatch.vllm.spec import BUCKETS_1_2_5, ENGINE_LABELS, MetricSpec

FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")
SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")
WAITING_REASONS = ("capacity", "deferred")
PROMPT_TOKEN_SOURCES = ("local_compute", "local_cache_hit", "external_kv_transfer")
CACHE_HIT_SOURCES = ("device", "host", "p2p", "disk", "external_unspecified")
ADMISSION_REASONS = ("max_num_queued_reqs", "max_num_queued_tokens")
CACHE_CONFIG_INFO = "vllm:cache_config_info"
# CacheConfig's attributes in declaration order (`_block_size_resolved` is a pydantic dataclass field too).
# fmt: off
CACHE_CONFIG_LABELS = (
    "block_size", "user_specified_block_size", "kv_cache_layout", "prefix_match_unit", "gpu_memory_utilization",
    "cache_dtype", "is_attention_free", "num_gpu_blocks_override", "sliding_window", "enable_prefix_caching",
    "prefix_caching_hash_algo", "prefix_cache_retention_interval", "kv_cache_dtype_skip_layers",
    "mamba_page_size_padded", "skip_page_size_padded", "mamba_block_size", "mamba_cache_dtype",
    "mamba_ssm_cache_dtype", "mamba_cache_mode", "enable_mamba_shared_prefix_checkpoint", "replayssm_buffer_len",
    "use_replayssm", "use_kda_recoverssm", "num_gpu_blocks", "num_cpu_blocks", "simple_cpu_offload_num_blocks",
    "effective_attention_block_size", "kv_cache_size_tokens", "kv_cache_max_concurrency", "hash_block_size",
    "cache_hit_alignment_tokens", "kv_sharing_fast_prefill", "swa_bounded_replay", "kv_cache_memory_bytes",
    "kv_offloading_size", "kv_offloading_backend", "_block_size_resolved", "engine",
)
# fmt: on


def _c(name: str, doc: str, label: str | None = None, values: tuple[str, ...] = ()) -> MetricSpec:
    labels = (*ENGINE_LABELS, label) if label else ENGINE_LABELS
    return MetricSpec(name, "counter", doc, labels, values=values)


def _g(name: str, doc: str, label: str | None = None, values: tuple[str, ...] = ()) -> MetricSpec:
    labels = (*ENGINE_LABELS, label) if label else ENGINE_LABELS
    return MetricSpec(name, "gauge", doc, labels, values=values)


def _h(name: str, doc: str, buckets: tuple[float, ...] | str) -> MetricSpec:
    return MetricSpec(name, "histogram", doc, ENGINE_LABELS, buckets)


_MFU = "(for Model Flops Utilization calculations)."

VLLM_METRICS: list[MetricSpec] = [
    _g("vllm:num_requests_running", "Number of requests in model execution batches."),
    _g("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
    _g(
        "vllm:num_requests_waiting_by_reason",
        "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; "
        "'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). "
        "Sum of all reasons equals vllm:num_requests_waiting.",
        "reason",
        WAITING_REASONS,
    ),
    _g(
        "vllm:engine_sleep_state",
        "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is "
        "awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
        "sleep_state",
        SLEEP_STATES,
    ),
    _g("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
    MetricSpec(CACHE_CONFIG_INFO, "gauge", "Information of the LLMEngine CacheConfig", CACHE_CONFIG_LABELS),
    _c("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens."),
    _c("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."),
    _c(
        "vllm:external_prefix_cache_queries",
        "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of "
        "queried tokens.",
    ),
    _c(
        "vllm:external_prefix_cache_hits",
        "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of "
        "cached tokens.",
    ),
    _c("vllm:mm_cache_queries", "Multi-modal cache queries, in terms of number of queried items."),
    _c("vllm:mm_cache_hits", "Multi-modal cache hits, in terms of number of cached items."),
    _c("vllm:num_preemptions", "Cumulative number of preemption from the engine."),
    _c("vllm:prompt_tokens", "Number of prefill tokens processed."),
    _c("vllm:prompt_tokens_by_source", "Number of prompt tokens by source.", "source", PROMPT_TOKEN_SOURCES),
    _c("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external)."),
    _c(
        "vllm:prompt_tokens_cached_by_source",
        "Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host (offloaded to "
        "DRAM), disk, p2p (transferred from another vLLM instance) or external_unspecified. Counted at "
        "admission; sums to vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.",
        "source",
        CACHE_HIT_SOURCES,
    ),
    _c("vllm:generation_tokens", "Number of generation tokens processed."),
    _c("vllm:request_success", "Count of successfully processed requests.", "finished_reason", FINISH_REASONS),
    MetricSpec(
        "vllm:admission_rejections",
        "counter",
        "Number of admission attempts rejected by a queue limit, by reason.",
        ("model_name", "reason"),
        values=ADMISSION_REASONS,
    ),
    _c("vllm:estimated_flops_per_gpu", f"Estimated number of floating point operations per GPU {_MFU}"),
    _c("vllm:estimated_read_bytes_per_gpu", f"Estimated number of bytes read from memory per GPU {_MFU}"),
    _c("vllm:estimated_write_bytes_per_gpu", f"Estimated number of bytes written to memory per GPU {_MFU}"),
    _h("vllm:request_prompt_tokens", "Number of prefill tokens processed.", BUCKETS_1_2_5),
    _h("vllm:request_generation_tokens", "Number of generation tokens processed.", BUCKETS_1_2_5),
    _h("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", ITERATION_TOKENS_BUCKETS),
    _h(
        "vllm:request_max_num_generation_tokens",
        "Histogram of maximum number of requested generation tokens.",
        BUCKETS_1_2_5,
    ),
    _h("vllm:request_params_n", "Histogram of the n request parameter.", REQUEST_PARAMS_N_BUCKETS),
    _h("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", BUCKETS_1_2_5),
    _h("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TIME_TO_FIRST_TOKEN_BUCKETS),
    _h("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", INTER_TOKEN_LATENCY_BUCKETS),
    _h(
        "vllm:request_time_per_output_token_seconds",
        "Histogram of time_per_output_token_seconds per request.",
        INTER_TOKEN_LATENCY_BUCKETS,
    ),
    _h("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", REQUEST_LATENCY_BUCKETS),
    _h(
        "vllm:request_queue_time_seconds",
        "Histogram of time spent in WAITING phase for request.",
        REQUEST_LATENCY_BUCKETS,
    ),
    _h(
        "vllm:request_inference_time_seconds",
        "Histogram of time spent in RUNNING phase for request.",
        REQUEST_LATENCY_BUCKETS,
    ),
    _h(
        "vllm:request_prefill_time_seconds",
        "Histogram of time spent in PREFILL phase for request.",
        REQUEST_LATENCY_BUCKETS,
    ),
    _h(
        "vllm:request_decode_time_seconds",
        "Histogram of time spent in DECODE phase for request.",
        REQUEST_LATENCY_BUCKETS,
    ),
    _h(
        "vllm:request_num_preemptions",
        "Histogram of the number of times a request was preempted.",
        REQUEST_NUM_PREEMPTIONS_BUCKETS,
    ),
    _h(
        "vllm:request_prefill_kv_computed_tokens",
        "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
        BUCKETS_1_2_5,
    ),
    *HTTP_METRICS,
]

REMOVED_METRICS = (
    "vllm:gpu_cache_usage_perc",
    "vllm:time_per_output_token_seconds",
    "vllm:prompt_tokens_recomputed",
)
