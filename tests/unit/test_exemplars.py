"""Exemplars: each latency observation names its request, only in OpenMetrics; the plain text format is unchanged."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from llmwatch.gateway.facts import RequestFacts
from llmwatch.gateway.metrics import GatewayMetrics
from llmwatch.gateway.recorder import MAX_EXEMPLAR_ID, OutcomeRecorder
from tests.support.inprocess import ListLog

pytestmark = pytest.mark.unit


class _Pool:
    def known_model(self, model: str) -> bool:
        return True


def _report(registry: CollectorRegistry, request_ids: list[str]) -> None:
    reporter = OutcomeRecorder(GatewayMetrics(registry), ListLog(), _Pool(), None)  # type: ignore[arg-type]
    for rid in request_ids:
        facts = RequestFacts("POST", "/v1/models", time.perf_counter() - 0.2, time.time())
        facts.request_id, facts.status = rid, 200
        reporter.record(facts)


def test_openmetrics_carries_request_ids_and_the_text_format_does_not() -> None:
    ids = ["req-a", "req-b", "x" * (MAX_EXEMPLAR_ID + 1)]
    registry = CollectorRegistry()
    _report(registry, ids)
    text = generate_latest(registry).decode()
    assert "request_id" not in text and "#{" not in text.replace("# ", "")
    families = {f.name: f for f in text_string_to_metric_families(generate_openmetrics(registry).decode())}
    exemplars = {s.exemplar.labels["request_id"] for s in families["llmwatch_request_duration_seconds"].samples
                 if s.exemplar is not None}  # fmt: skip
    assert exemplars and exemplars <= {"req-a", "req-b"}, exemplars
    assert all(len(e) <= MAX_EXEMPLAR_ID for e in exemplars), "a too-long id is never cut into another"


def test_plain_text_exposition_is_byte_for_byte_what_it_was_without_exemplars() -> None:
    with_ids, without = CollectorRegistry(), CollectorRegistry()
    metrics = GatewayMetrics(without)
    for _ in range(3):
        metrics.duration.labels("m", "chat").observe(0.25)
    other = GatewayMetrics(with_ids)
    for n in range(3):
        other.duration.labels("m", "chat").observe(0.25, {"request_id": f"r{n}"})
    assert _without_created(generate_latest(with_ids)) == _without_created(generate_latest(without))


def _without_created(exposition: bytes) -> list[bytes]:
    # *_created holds each registry's creation time; the gateway turns it off (disable_created_metrics).
    return [line for line in exposition.splitlines() if b"_created" not in line]
