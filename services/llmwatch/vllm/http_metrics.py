"""The http_* families of vLLM's API server: prometheus-fastapi-instrumentator's defaults, as
`vllm/entrypoints/serve/instrumentator/metrics.py` (vLLM 0.33.0) sets it up, with /metrics, /health, /load, /ping,
/version and /server_info excluded. Status is grouped as 2xx/4xx/5xx, and handler is the route template.
"""

from __future__ import annotations

from llmwatch.vllm.buckets import HTTP_HIGHR_BUCKETS, HTTP_LOWR_BUCKETS
from llmwatch.vllm.spec import MetricSpec

HTTP_METRICS: list[MetricSpec] = [
    MetricSpec(
        "http_requests",
        "counter",
        "Total number of requests by method, status and handler.",
        ("method", "status", "handler"),
    ),
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
        HTTP_LOWR_BUCKETS,
    ),
]
