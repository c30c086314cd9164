"""vLLM 0.33's histogram buckets, as `vllm/v1/metrics/buckets.py` of the vLLM 0.33.0 wheel defines them, and the
defaults of prometheus-fastapi-instrumentator that vLLM's API server exposes (its `http_*` histograms).

Updating to a newer vLLM means updating this file: the simulator exposes these buckets, and the gateway's TTFT and
TPOT histograms are built on them so that the two tiers' quantiles line up.
"""

from __future__ import annotations

# fmt: off
TIME_TO_FIRST_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                               10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
# vllm:inter_token_latency_seconds and vllm:request_time_per_output_token_seconds
INTER_TOKEN_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                               10.0, 20.0, 40.0, 80.0)
# e2e latency and the queue, inference, prefill and decode phases
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                           240.0, 480.0, 960.0, 1920.0, 7680.0)
ITERATION_TOKENS_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
REQUEST_PARAMS_N_BUCKETS = (1, 2, 5, 10, 20)
REQUEST_NUM_PREEMPTIONS_BUCKETS = (1, 2, 3, 4, 5, 10, 20)

# prometheus-fastapi-instrumentator's defaults: http_request_duration_highr_seconds, http_request_duration_seconds
HTTP_HIGHR_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 7.5, 10,
                      30, 60)
HTTP_LOWR_BUCKETS = (0.1, 0.5, 1)
# fmt: on


def build_1_2_5_buckets(max_value: int) -> tuple[float, ...]:
    """vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... while <= max_value (token-count histograms, whose
    largest bucket is the engine's max_model_len)."""
    buckets: list[float] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return tuple(buckets)
            buckets.append(value)
        exponent += 1
