"""Every metric the simulator exposes, in ONE place: the collectors are built from this list and a test
fails when /metrics differs from it.

Source: vllm-project/vllm `vllm/v1/metrics/loggers.py` (PrometheusStatLogger.__init__ and
log_metrics_info), `vllm/config/cache.py` (CacheConfig.metrics_info: every CacheConfig field becomes a label of
vllm:cache_config_info, plus `engine`) and `vllm/v1/engine/__init__.py` (FINISH_REASON_STRINGS). The http_*
families are prometheus-fastapi-instrumentator's defaults, which vLLM mounts in
`vllm/entrypoints/serve/instrumentator/metrics.py` with /metrics, /health, /load, /ping, /version and
/server_info excluded. Only what vLLM registers unconditionally is listed: the speculative-decoding, LoRA,
KV-connector, MFU and KV-residency families need flags the simulator does not model. vllm:gpu_cache_usage_perc
and vllm:time_per_output_token_seconds were removed upstream and must never appear.

``name`` is the name given to prometheus_client (a counter is exposed as ``name + "_total"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["counter", "gauge", "histogram", "summary"]
ENGINE_LABELS = ("model_name", "engine")
BUCKETS_1_2_5 = "1-2-5 up to max_model_len"

# fmt: off
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)
TOKEN_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                         20.0, 40.0, 80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                           240.0, 480.0, 960.0, 1920.0, 7680.0)
ITERATION_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
HTTP_HIGHR_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 7.5, 10,
                      30, 60)
# fmt: on

FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")
SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")
# The CacheConfig fields the simulator reports (upstream reports all of them; these are the stable ones).
# fmt: off
CACHE_CONFIG_LABELS = ("block_size", "gpu_memory_utilization", "cache_dtype", "is_attention_free",
                       "num_gpu_blocks_override", "sliding_window", "enable_prefix_caching",
                       "prefix_caching_hash_algo", "num_gpu_blocks", "num_cpu_blocks", "kv_cache_memory_bytes",
                       "engine")
# fmt: on


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: MetricType
    documentation: str
    labels: tuple[str, ...] = ENGINE_LABELS
    buckets: tuple[float, ...] | str | None = None

    @property
    def exposed_name(self) -> str:
        return self.name + "_total" if self.type == "counter" else self.name


def build_1_2_5_buckets(max_value: int) -> tuple[float, ...]:
    """vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... while <= max_value."""
    buckets: list[float] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return tuple(buckets)
            buckets.append(value)
        exponent += 1


def _c(name: str, doc: str, labels: tuple[str, ...] = ENGINE_LABELS) -> MetricSpec:
    return MetricSpec(name, "counter", doc, labels)


def _g(name: str, doc: str, labels: tuple[str, ...] = ENGINE_LABELS) -> MetricSpec:
    return MetricSpec(name, "gauge", doc, labels)


def _h(name: str, doc: str, buckets: tuple[float, ...] | str) -> MetricSpec:
    return MetricSpec(name, "histogram", doc, ENGINE_LABELS, buckets)


VLLM_METRICS: list[MetricSpec] = [
    _g("vllm:num_requests_running", "Number of requests in model execution batches."),
    _g("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
    _g(
        "vllm:engine_sleep_state",
        "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is "
        "awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
        (*ENGINE_LABELS, "sleep_state"),
    ),
    _g("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
    _g("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", CACHE_CONFIG_LABELS),
    _c("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens."),
    _c("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."),
    _c("vllm:num_preemptions", "Cumulative number of preemption from the engine."),
    _c("vllm:prompt_tokens", "Number of prefill tokens processed."),
    _c("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external)."),
    _c("vllm:prompt_tokens_recomputed", "Number of cached tokens recomputed for forward pass."),
    _c("vllm:generation_tokens", "Number of generation tokens processed."),
    _c("vllm:request_success", "Count of successfully processed requests.", (*ENGINE_LABELS, "finished_reason")),
    _h("vllm:request_prompt_tokens", "Number of prefill tokens processed.", BUCKETS_1_2_5),
    _h("vllm:request_generation_tokens", "Number of generation tokens processed.", BUCKETS_1_2_5),
    _h("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", ITERATION_BUCKETS),
    _h(
        "vllm:request_max_num_generation_tokens",
        "Histogram of maximum number of requested generation tokens.",
        BUCKETS_1_2_5,
    ),
    _h("vllm:request_params_n", "Histogram of the n request parameter.", (1, 2, 5, 10, 20)),
    _h("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", BUCKETS_1_2_5),
    _h("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS),
    _h("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", TOKEN_LATENCY_BUCKETS),
    _h(
        "vllm:request_time_per_output_token_seconds",
        "Histogram of time_per_output_token_seconds per request.",
        TOKEN_LATENCY_BUCKETS,
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
        "vllm:request_prefill_kv_computed_tokens",
        "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
        BUCKETS_1_2_5,
    ),
    # prometheus-fastapi-instrumentator defaults (status grouped as 2xx/4xx/5xx, handler = route template)
    _c("http_requests", "Total number of requests by method, status and handler.", ("method", "status", "handler")),
    MetricSpec(
        "http_request_size_bytes",
        "summary",
        "Content length of incoming requests by handler. Only value of "
        "header is respected. Otherwise ignored. No percentile calculated. ",
        ("handler",),
    ),
    MetricSpec(
        "http_response_size_bytes",
        "summary",
        "Content length of outgoing responses by handler. Only value "
        "of header is respected. Otherwise ignored. No percentile calculated. ",
        ("handler",),
    ),
    MetricSpec(
        "http_request_duration_highr_seconds",
        "histogram",
        "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ",
        (),
        HTTP_HIGHR_BUCKETS,
    ),
    MetricSpec(
        "http_request_duration_seconds",
        "histogram",
        "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ",
        ("method", "handler"),
        (0.1, 0.5, 1),
    ),
]

REMOVED_METRICS = ("vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds")


def spec_by_name() -> dict[str, MetricSpec]:
    return {spec.name: spec for spec in VLLM_METRICS}


def histogram_buckets(spec: MetricSpec, max_model_len: int) -> tuple[float, ...]:
    if spec.buckets == BUCKETS_1_2_5:
        return build_1_2_5_buckets(max_model_len)
    if isinstance(spec.buckets, tuple):
        return spec.buckets
    raise ValueError(f"{spec.name} is not a histogram")
