"""A stand-in Prometheus for the doctor's unit tests: each instant query (`POST /api/v1/query`, what
llmwatch.prom.Prometheus sends) is answered by a function of its PromQL, as a vector in the HTTP API's shape."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import httpx

from llmwatch import thresholds
from llmwatch.prom import Prometheus

Row = dict[str, Any]  # one sample of a vector: {"metric": labels, "value": [time, "number"]}
THRESHOLDS_QUERY = '{__name__=~"threshold:'  # how the doctor's Context.load asks for every threshold series


def sample(value: float, **labels: str) -> Row:
    return {"metric": labels, "value": [0, str(value)]}


def up(*jobs: str) -> list[Row]:
    """`up` of one healthy target per job."""
    return [sample(1, job=job, instance=f"{job}:1") for job in jobs]


def threshold_rows(series: Iterable[thresholds.Threshold]) -> list[Row]:
    return [sample(t.value, __name__=t.record, **t.labels) for t in series]


def stand_in(rows: Callable[[str], list[Row]], asked: list[str] | None = None) -> Prometheus:
    """A Prometheus whose answer to each query is ``rows(query)``; every query is appended to ``asked`` if given."""

    def answer(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.content.decode())["query"][0]
        if asked is not None:
            asked.append(query)
        result = rows(query)
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": result}})

    return Prometheus("http://prometheus:9090", httpx.Client(transport=httpx.MockTransport(answer)))
