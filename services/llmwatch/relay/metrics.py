"""The relay's own Prometheus metrics, on an injected registry."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

# success: delivered; retry: an attempt failed and another follows; failure: gave up after the last attempt;
# dropped: the relay stopped before it could finish. Alerts read `failure`.
OUTCOMES = ("success", "retry", "failure", "dropped")


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry, targets: Iterable[str]) -> None:
        self.deliveries = Counter(
            "llmwatch_relay_deliveries", "Delivery attempts by target and outcome.", ("target", "outcome"),
            registry=registry,
        )  # fmt: skip
        self.notifications = Counter(
            "llmwatch_relay_notifications", "Alertmanager POSTs by outcome: accepted or invalid.", ("outcome",),
            registry=registry,
        )  # fmt: skip
        self.pending = Gauge(
            "llmwatch_relay_deliveries_pending", "Messages being delivered or waiting for a retry.", registry=registry
        )
        # Series exist at 0 from the start, so increase() sees the first failure.
        for target in targets:
            for outcome in OUTCOMES:
                self.deliveries.labels(target, outcome)
        for outcome in ("accepted", "invalid"):
            self.notifications.labels(outcome)
