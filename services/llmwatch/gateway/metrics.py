"""The gateway's Prometheus metrics, on an injected registry.

Names map to the OTel GenAI semantic conventions as follows (README has the table):
llmwatch_time_to_first_token_seconds ~ gen_ai.server.time_to_first_token,
llmwatch_time_per_output_token_seconds ~ gen_ai.server.time_per_output_token,
llmwatch_request_duration_seconds ~ gen_ai.server.request.duration,
llmwatch_tokens_total{type} ~ gen_ai.client.token.usage (gen_ai.token.type = input/output).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# vLLM 0.33's own boundaries, so gateway and engine panels line up (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# 0.8 s (TTFT SLO) and 3 s (P99 SLO) sit on bucket edges so the alerts' quantiles are not interpolated across them.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.8, 1, 1.5, 2, 2.5, 3, 5, 10, 15, 20, 30, 60, 120, 240)

OTHER_MODEL = "other"


class GatewayMetrics:
    """All gateway series. Label values are bounded: models the upstream serves, kinds, status codes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("model", "kind")
        self.requests = Counter(
            "llmwatch_requests", "Requests answered, by outcome status.", (*labels, "status"), registry=registry
        )
        self.duration = Histogram(
            "llmwatch_request_duration_seconds", "End-to-end request latency.", labels,
            buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.ttft = Histogram(
            "llmwatch_time_to_first_token_seconds", "Time to the first content or reasoning token (streamed).",
            labels, buckets=TTFT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.tpot = Histogram(
            "llmwatch_time_per_output_token_seconds", "Mean time per output token after the first (streamed).",
            labels, buckets=TPOT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.tokens = Counter(
            "llmwatch_tokens", "Tokens by type; reasoning is a subset of completion.", (*labels, "type"),
            registry=registry,
        )  # fmt: skip
        self.empty = Counter(
            "llmwatch_empty_responses", "Successful responses with no tokens or a blank answer.", labels,
            registry=registry,
        )  # fmt: skip
        self.in_flight = Gauge("llmwatch_requests_in_flight", "Requests being served now.", registry=registry)
        self.upstream_errors = Counter(
            "llmwatch_upstream_errors", "Failures talking to an upstream.", ("upstream", "error_type"),
            registry=registry,
        )  # fmt: skip
        self.upstream_up = Gauge(
            "llmwatch_upstream_up", "1 when the upstream's /health answered 200 at the last probe.", ("upstream",),
            registry=registry,
        )  # fmt: skip
