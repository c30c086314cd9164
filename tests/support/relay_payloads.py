"""Alertmanager webhook payloads for the relay's tests (version 4, as Alertmanager sends them)."""

from __future__ import annotations

import json
from typing import Any

from llmwatch.relay.payload import Notification


def alert(name: str = "GatewayErrorRatioHigh", status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "severity": "critical", "component": "gateway", "job": "gateway", **labels},
        "annotations": {
            "summary": "Gateway 5xx ratio 10% over 5m (threshold 5%)",
            "description": "Users are getting server errors. Check first: the status split.",
            "runbook_url": "docs/alerting.md#gatewayerrorratiohigh",
        },
        "startsAt": "2025-03-01T08:00:00.123Z",
        "endsAt": "2025-03-01T08:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": "abc123",
    }


def payload(*alerts: dict[str, Any], status: str = "firing", **extra: Any) -> dict[str, Any]:
    """A version-4 payload shaped like Alertmanager 0.25 sends it."""
    items = list(alerts) or [alert()]
    common = {"alertname": items[0]["labels"]["alertname"], "severity": items[0]["labels"]["severity"]}
    return {
        "receiver": "oncall",
        "status": status,
        "alerts": items,
        "groupLabels": {"alertname": common["alertname"]},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="GatewayErrorRatioHigh"}',
        "truncatedAlerts": 0,
        **extra,
    }


def parse(data: dict[str, Any]) -> Notification:
    return Notification.model_validate_json(json.dumps(data))
