"""llmwatch.thresholds reads the same constants the alert rules compare against."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmwatch import thresholds

pytestmark = pytest.mark.unit


def test_reads_the_repo_file() -> None:
    assert thresholds.value("threshold:gateway_ttft_p99_seconds:max") == 0.8
    assert thresholds.value("threshold:engine_stream_decode_tokens_per_second:min", gpu_class="h100") == 340


def test_ambiguous_or_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(thresholds.ThresholdError, match="2 constant values"):
        thresholds.value("threshold:gateway_request_p99_seconds:max")
    with pytest.raises(thresholds.ThresholdError, match="0 constant values"):
        thresholds.value("threshold:nope:max")


def test_computed_records_are_not_constants(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text(
        "groups: [{name: g, rules: [{record: 'threshold:a:max', expr: 'vector(3e9)'},"
        " {record: 'threshold:b:min', expr: 'min(x)'}]}]\n"
    )
    assert [(t.record, t.value) for t in thresholds.load(path)] == [("threshold:a:max", 3e9)]
