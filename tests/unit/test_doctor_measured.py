"""The doctor's `queueing` finding replayed on what the GPU check measured (docs/gpu-check.md): vLLM 0.26.0 on the
lent H100 with compose's old default `--max-num-seqs 4`, under the load test's 4 req/s gate. The batch it suggests
is the one whose gate passed there."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from llmwatch import engine_sizing, thresholds
from llmwatch.doctor.checks import batch_for, queueing
from llmwatch.doctor.context import Context
from llmwatch.doctor.prom import Prometheus

pytestmark = pytest.mark.unit

# bench/gpu_check.py's report of that run: the engine gauges' peaks during the gate (scraped every second) and
# vLLM's mean queue time over the gate (vllm:request_queue_time_seconds sum / count of /metrics after the load).
MEASURED = {"running_peak": 4.0, "waiting_peak": 0.0, "kv_cache_usage_max": 0.0, "mean_queue_seconds": 0.0,
            "waiting_share": 0.0}  # fmt: skip
PASSED_AT = 32  # the --max-num-seqs whose gate passed (TTFT p50/p99, tokens/s, goodput) on the same card


def measured_prometheus(tmp: Path, seqs: int) -> Prometheus:
    """The engine-sizing thresholds for ``seqs``, and MEASURED as the answers to the queueing queries."""
    series = [*thresholds.load(), *thresholds.load(engine_sizing.write(tmp, {"VLLM_MAX_NUM_SEQS": str(seqs)}))]

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


def test_queueing_on_the_measured_numbers_suggests_the_batch_that_passed(tmp_path: Path) -> None:
    found = queueing(Context.load(measured_prometheus(tmp_path, 4), "5m"))
    assert found is not None and found.id == "queueing"
    assert found.action is not None and found.action.flag == "--max-num-seqs"
    assert found.action.value == str(PASSED_AT)


def test_batch_for_makes_room_for_the_peak_as_a_power_of_two() -> None:
    assert batch_for(4, 4) == 8  # at least twice the batch
    assert batch_for(4, 12) == 16
    assert batch_for(4, 17) == 32
    assert batch_for(16, 3) == 32
