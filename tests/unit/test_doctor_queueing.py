"""The batch the doctor's `queueing` finding suggests: room for every request the engine held at the peak.

MEASURED is a scenario, not a measurement: 4 slots all busy, 13 more waiting at the peak, half a second of mean
queue time against the 0.8 s TTFT target, a cache at 6%. MEASURED_H100_32 is a measurement: bench/gpu_check's gate
on vLLM 0.26.0 with compose's default of 32 sequences on the lent H100 (docs/gpu-check.md): the gauges' peaks
during the 60 s gate at 4 req/s from its report, and the mean queue time from vLLM's own
request_queue_time_seconds after the run (0.0371 s over 673 requests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmwatch import thresholds
from llmwatch.doctor.checks.capacity import batch_for, queueing
from llmwatch.doctor.context import Context
from llmwatch.prom import Prometheus
from llmwatch.render import engine_sizing
from tests.fakes.prometheus import THRESHOLDS_QUERY, Row, sample, stand_in, threshold_rows, up
from tests.support import REPO

pytestmark = pytest.mark.unit

MEASURED = {"running_peak": 4.0, "waiting_peak": 13.0, "kv_cache_usage_max": 0.06, "mean_queue_seconds": 0.5,
            "waiting_share": 0.7}  # fmt: skip
SUGGESTED = 32  # 4 + 13 = 17 held: the next power of two; the doubling rule before said 8
MEASURED_H100_32 = {"running_peak": 7.0, "waiting_peak": 0.0, "kv_cache_usage_max": 0.0115372,
                    "mean_queue_seconds": 0.0371 / 673, "waiting_share": 0.0}  # fmt: skip


def measured_prometheus(tmp: Path, seqs: int, measured: dict[str, float] = MEASURED) -> Prometheus:
    """The engine-sizing thresholds for ``seqs``, and ``measured`` as the answers to the queueing queries."""
    series = [*thresholds.load(), *thresholds.load(engine_sizing.write(REPO, tmp, {"VLLM_MAX_NUM_SEQS": str(seqs)}))]

    def value(query: str) -> float | None:
        if query.startswith("avg_over_time") and "vllm:num_requests_waiting" in query:
            return measured["waiting_share"]
        if query.startswith("max_over_time") and "vllm:num_requests_running" in query:
            return measured["running_peak"]
        if query.startswith("max_over_time") and "vllm:num_requests_waiting" in query:
            return measured["waiting_peak"]
        if "vllm:request_queue_time_seconds_sum" in query:
            return measured["mean_queue_seconds"]
        if "vllm:kv_cache_usage_perc" in query:
            return measured["kv_cache_usage_max"]
        return None

    def rows(query: str) -> list[Row]:
        if query == "up":
            return up("vllm")
        if query.startswith(THRESHOLDS_QUERY):
            return threshold_rows(series)
        v = value(query)
        return [] if v is None else [sample(v)]

    return stand_in(rows)


def test_queueing_makes_room_for_the_requests_held_at_the_peak(tmp_path: Path) -> None:
    found = queueing(Context.load(measured_prometheus(tmp_path, 4), "5m"))
    assert found is not None and found.id == "queueing"
    assert found.action is not None and found.action.flag == "--max-num-seqs"
    assert found.action.value == str(SUGGESTED) and "17 requests" in found.action.why


def test_queueing_is_quiet_on_the_measured_h100_gate_at_compose_default(tmp_path: Path) -> None:
    """Nothing waited at 32 sequences and 4 req/s on the H100: no finding, so no flag to change."""
    assert queueing(Context.load(measured_prometheus(tmp_path, 32, MEASURED_H100_32), "5m")) is None
    # The same gauges on a batch of 7 (every slot busy) with a real wait would be a finding: the replay can fire.
    busy = {**MEASURED_H100_32, "waiting_peak": 9.0, "mean_queue_seconds": 0.5, "waiting_share": 0.5}
    found = queueing(Context.load(measured_prometheus(tmp_path, 7, busy), "5m"))
    assert found is not None and found.action is not None and found.action.value == "16"


def test_batch_for_makes_room_for_the_peak_as_a_power_of_two() -> None:
    assert batch_for(4, 4) == 8  # at least twice the batch
    assert batch_for(4, 12) == 16
    assert batch_for(4, 17) == 32
    assert batch_for(16, 3) == 32
