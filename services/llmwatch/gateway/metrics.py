"""The gateway's Prometheus metrics, on an injected registry.

Names map to the OTel GenAI semantic conventions as follows (README has the table):
llmwatch_time_to_first_token_seconds ~ gen_ai.server.time_to_first_token,
llmwatch_time_per_output_token_seconds ~ gen_ai.server.time_per_output_token,
llmwatch_request_duration_seconds ~ gen_ai.server.request.duration,
llmwatch_tokens_total{type} ~ gen_ai.client.token.usage (gen_ai.token.type = input/output).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llmwatch.answers import ANSWER_KINDS
from llmwatch.gateway.access_log import DROP_REASONS
from llmwatch.vllm.buckets import INTER_TOKEN_LATENCY_BUCKETS, TIME_TO_FIRST_TOKEN_BUCKETS

# TTFT: vLLM 0.33's time-to-first-token buckets plus 0.8 s, the operator's TTFT target, so the TTFT alert's quantile
# is not interpolated across it. TPOT: vLLM 0.33's inter-token-latency buckets, unchanged (vllm/v1/metrics/buckets.py).
TTFT_BUCKETS = tuple(sorted({*TIME_TO_FIRST_TOKEN_BUCKETS, 0.8}))
TPOT_BUCKETS = INTER_TOKEN_LATENCY_BUCKETS
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
            "llmwatch_time_to_first_token_seconds",
            "Time to the first content, reasoning or tool-call delta (streamed).",
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
            "llmwatch_empty_responses", "Successful generations with no answer: no text and no tool call "
            "(reasoning only, or nothing).", labels, registry=registry,
        )  # fmt: skip
        self.answers = Counter(
            "llmwatch_answers", "Successful generations by what they answered: answer_kind is text, tool_calls "
            "(with or without text), reasoning_only or empty.", (*labels, "answer_kind"), registry=registry,
        )  # fmt: skip
        self.in_flight = Gauge("llmwatch_requests_in_flight", "Requests being served now.", registry=registry)
        self.errors = Counter(
            "llmwatch_request_errors", "Requests that ended in an error, by error_type (the access log's).",
            (*labels, "error_type"), registry=registry,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "llmwatch_upstream_errors", "Failures of the link to an engine: it failed, timed out, broke a stream, "
            "was unreachable, saturated or refused the gateway's key. Engine 4xx answers to bad requests are not "
            "counted here.", ("upstream", "error_type"), registry=registry,
        )  # fmt: skip
        self.warmup_timeouts = Counter(
            "llmwatch_warmup_timeouts", "Warm-ups that ran past --warmup-timeout; the upstream took traffic anyway.",
            ("upstream",), registry=registry,
        )  # fmt: skip
        self.header_rejections = Counter(
            "llmwatch_connections_rejected", "Connections closed before a request: headers too slow or too large.",
            ("reason",), registry=registry,
        )  # fmt: skip
        self.engine_anomalies = Counter(
            "llmwatch_engine_anomalies", "Engine answers that break the OpenAI protocol (a `usage` that is not an "
            "object, negative or non-integer counts, a non-string finish_reason, a chunk that is not one); the "
            "request is still logged, without what was invalid.", ("field",), registry=registry,
        )  # fmt: skip
        self.report_failures = Counter(
            "llmwatch_report_failures", "Steps of reporting a request that failed (a bug: the gateway's log has the "
            "traceback); the access-log line is written anyway.", ("step",), registry=registry,
        )  # fmt: skip
        self.log_lines_dropped = Counter(
            "llmwatch_access_log_lines_dropped", "Access-log lines not written: `queue_full` (a destination stalled "
            "while --log-max-queued-bytes of lines waited, so new ones were dropped) or `write_error` (a destination "
            "refused them, e.g. a full disk; counted once per destination).", ("reason",), registry=registry,
        )  # fmt: skip
        for reason in DROP_REASONS:
            self.log_lines_dropped.labels(reason)
        self.upstream_up = Gauge(
            "llmwatch_upstream_up", "1 when the upstream's /health answered 200 at the last probe.", ("upstream",),
            registry=registry,
        )  # fmt: skip

    def prime(self, model: str) -> None:
        """Start a served model's user-traffic series at 0, so rate() and increase() count its first requests too
        (a series born at its first increment loses that increment to extrapolation)."""
        for kind in ("chat", "task"):
            self.requests.labels(model, kind, "200")
            self.duration.labels(model, kind)
            self.ttft.labels(model, kind)
            self.tpot.labels(model, kind)
            self.empty.labels(model, kind)
            for answer in ANSWER_KINDS:
                self.answers.labels(model, kind, answer)
            for type_ in ("prompt", "completion", "reasoning"):
                self.tokens.labels(model, kind, type_)
