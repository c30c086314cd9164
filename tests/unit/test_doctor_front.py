"""The doctor's `engine_front_cpu` finding: vLLM's API server at a full core sets the pace, and the flag to change is
--api-server-count.

MEASURED_H100_256 is a measurement: bench/gpu_check's KPI sweep on vLLM 0.26.0 with --max-num-seqs 256 on the lent
H100 (docs/gpu-check.md), where the API-server process ran at 100-101% of a core in every cell from 64 streams up
(read from /proc, the same counter prometheus_client exports as process_cpu_seconds_total). The quiet case is a
scenario, not a measurement."""

from __future__ import annotations

import pytest

from llmwatch import thresholds
from llmwatch.doctor.checks.capacity import engine_front_cpu
from llmwatch.doctor.context import Context, Skip
from llmwatch.prom import Prometheus
from tests.fakes.prometheus import Row, sample, stand_in, up
from tests.support.promql import VLLM_CAPTURE, VLLM_CAPTURE_TWO_API_SERVERS

pytestmark = pytest.mark.unit

MEASURED_H100_256 = 1.01  # cores: the API server's share at 256 streams, one API server


def prometheus(front_cores: float | None) -> Prometheus:
    """A Prometheus scraping the stack's `vllm` job, whose process CPU rate is ``front_cores`` (None: no series)."""

    def rows(query: str) -> list[Row]:
        if query == "up":
            return up("vllm")
        if query.startswith("max(rate(process_cpu_seconds_total{") and front_cores is not None:
            return [sample(front_cores)]
        return []

    return stand_in(rows)


def test_a_saturated_api_server_names_the_flag_that_splits_it() -> None:
    found = engine_front_cpu(Context.load(prometheus(MEASURED_H100_256), "5m"))
    assert found is not None and found.id == "engine_front_cpu" and found.severity == "warning"
    assert found.action is not None and (found.action.flag, found.action.value) == ("--api-server-count", "4")
    measured, line = found.evidence
    assert measured.value == MEASURED_H100_256
    assert measured.query == (
        'max(rate(process_cpu_seconds_total{job="vllm"}[5m]) or sum without (mode) '
        '(rate(namedprocess_namegroup_cpu_seconds_total{groupname=~"APIServer_[0-9]+"}[5m])))'
    )
    assert (line.value, line.source) == (0.9, "default"), "no threshold series here: the stack's default"
    assert "101% of a core" in found.title


def test_an_api_server_with_room_is_quiet() -> None:
    line = thresholds.value("threshold:engine_front_cpu_cores:max")
    assert engine_front_cpu(Context.load(prometheus(line - 0.3), "5m")) is None


def test_without_the_engines_process_series_it_is_not_checked() -> None:
    """llama.cpp exports no process_* series, nor does vLLM with several API servers (the multiprocess capture in
    tests/fixtures has none; compose's vllm-processes fills that in, tests/integration/test_vllm_processes.py): with
    neither, not checked rather than quiet."""
    with pytest.raises(Skip, match="the engine's process CPU"):
        engine_front_cpu(Context.load(prometheus(None), "5m"))
    assert "\nprocess_cpu_seconds_total " in VLLM_CAPTURE.read_text()
    assert "\nprocess_cpu_seconds_total" not in VLLM_CAPTURE_TWO_API_SERVERS.read_text()
