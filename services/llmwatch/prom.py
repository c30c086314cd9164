"""The one Prometheus HTTP API client: instant queries, answered as plain numbers and label sets.

The doctor, the demo, the load test's GPU report and the tests all read Prometheus through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx


class Unreachable(RuntimeError):
    """Prometheus did not answer (connection, timeout, or not a Prometheus API)."""


class QueryError(RuntimeError):
    """Prometheus answered with an error for one expression (a bug in the PromQL, or an old Prometheus)."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class Prometheus:
    """Instant queries against ``url``; the client is injectable so tests can use their own (else one request each,
    waiting ``timeout`` seconds)."""

    def __init__(self, url: str, client: httpx.Client | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.client = client
        self.timeout = timeout

    def answer(self, expr: str) -> dict[str, Any]:
        """The API's JSON answer to the instant query ``expr``, an error answer (status "error") included."""
        try:
            if self.client is None:
                answer = httpx.post(f"{self.url}/api/v1/query", data={"query": expr}, timeout=self.timeout)
            else:
                answer = self.client.post(f"{self.url}/api/v1/query", data={"query": expr})
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach Prometheus at {self.url}: {exc}") from exc
        body = _json(answer)
        if body is None:
            raise Unreachable(f"{self.url} answered HTTP {answer.status_code} without the Prometheus API's JSON")
        return body

    def query(self, expr: str) -> list[Sample]:
        """Every sample of the instant vector (or the one scalar) ``expr`` evaluates to now; NaN samples dropped."""
        body = self.answer(expr)
        if body.get("status") != "success":
            raise QueryError(f"Prometheus refused {expr!r}: {body.get('error', body)}")
        data = body["data"]
        if data["resultType"] == "scalar":
            rows: list[Any] = [{"metric": {}, "value": data["result"]}]
        else:
            rows = data["result"]
        samples = [Sample(dict(row["metric"]), float(row["value"][1])) for row in rows]
        return [s for s in samples if not math.isnan(s.value)]

    def value(self, expr: str) -> float | None:
        """The single number ``expr`` gives (the largest if several), or None when it gives nothing."""
        samples = self.query(expr)
        return max(s.value for s in samples) if samples else None


def _json(answer: httpx.Response) -> dict[str, Any] | None:
    try:
        body = answer.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and "status" in body else None
