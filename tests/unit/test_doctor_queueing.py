"""The batch the doctor's `queueing` finding suggests: room for every request the engine held at the peak.

The numbers below are a scenario, not a measurement: 4 slots all busy, 13 more waiting at the peak, half a second of
mean queue time against the 0.8 s TTFT target, a cache at 6%. Replaying bench/gpu_check's own gauges (its report
lists their peaks during the gate) is the same test with MEASURED from that report."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from llmwatch import thresholds
from llmwatch.doctor.checks.capacity import batch_for, queueing
from llmwatch.doctor.context import Context
from llmwatch.prom import Prometheus
from llmwatch.render import engine_sizing
from tests.support import REPO

pytestmark = pytest.mark.unit

MEASURED = {"running_peak": 4.0, "waiting_peak": 13.0, "kv_cache_usage_max": 0.06, "mean_queue_seconds": 0.5,
            "waiting_share": 0.7}  # fmt: skip
SUGGESTED = 32  # 4 + 13 = 17 held: the next power of two; the doubling rule before said 8


def measured_prometheus(tmp: Path, seqs: int) -> Prometheus:
    """The engine-sizing thresholds for ``seqs``, and MEASURED as the answers to the queueing queries."""
    series = [*thresholds.load(), *thresholds.load(engine_sizing.write(REPO, tmp, {"VLLM_MAX_NUM_SEQS": str(seqs)}))]

    def value(query: str) -> float | None:
        if query.startswith("avg_over_time") and "vllm:num_requests_waiting" in query:
            return MEASURED["waiting_share"]
        if query.startswith("max_over_time") and "vllm:num_requests_running" in query:
            return MEASURED["running_peak"]
        if query.startswith("max_over_time") and "vllm:num_requests_waiting" in query:
            return MEASURED["waiting_peak"]
        if "vllm:request_queue_time_seconds_sum" in query:
            return MEASURED["mean_queue_seconds"]
        if "vllm:kv_cache_usage_perc" in query:
            return MEASURED["kv_cache_usage_max"]
        return None

    def answer(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.content.decode())["query"][0]
        result: list[dict[str, Any]] = []
        if query == "up":
            result = [{"metric": {"job": "vllm", "instance": "vllm:8000"}, "value": [0, "1"]}]
        elif query.startswith('{__name__=~"threshold:'):
            result = [{"metric": {"__name__": t.record, **t.labels}, "value": [0, str(t.value)]} for t in series]
        elif (v := value(query)) is not None:
            result = [{"metric": {}, "value": [0, str(v)]}]
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": result}})

    return Prometheus("http://prometheus:9090", httpx.Client(transport=httpx.MockTransport(answer)))


def test_queueing_makes_room_for_the_requests_held_at_the_peak(tmp_path: Path) -> None:
    found = queueing(Context.load(measured_prometheus(tmp_path, 4), "5m"))
    assert found is not None and found.id == "queueing"
    assert found.action is not None and found.action.flag == "--max-num-seqs"
    assert found.action.value == str(SUGGESTED) and "17 requests" in found.action.why


def test_batch_for_makes_room_for_the_peak_as_a_power_of_two() -> None:
    assert batch_for(4, 4) == 8  # at least twice the batch
    assert batch_for(4, 12) == 16
    assert batch_for(4, 17) == 32
    assert batch_for(16, 3) == 32
