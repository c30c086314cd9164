"""The doctor's path is declared once (checks/path.py): the ids, the docs' table and the ranking follow it."""

from __future__ import annotations

import re
from typing import get_args

import pytest

from llmwatch.doctor.checks.path import PATH
from llmwatch.doctor.diagnose import rank
from llmwatch.doctor.finding import Action, CheckId, Finding
from llmwatch.duration import duration, is_duration, seconds
from tests.support import REPO

pytestmark = pytest.mark.unit


def test_every_finding_id_is_one_check_of_the_path_and_the_symptom_comes_last() -> None:
    ids = [check.id for check in PATH]
    assert ids == list(get_args(CheckId)), "finding.CheckId lists the ids in the path's order"
    assert len(set(ids)) == len(ids)
    assert ids[-1] == "ttft_high", "the symptom reads the findings of every check before it"


def test_the_docs_table_lists_the_findings_in_the_paths_order() -> None:
    text = (REPO / "docs/doctor.md").read_text()
    table = text.split("## The findings", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^\| `(\w+)` \|", table, re.M) == [check.id for check in PATH]


def test_ranking_within_a_severity_follows_the_path() -> None:
    found = [Finding(c.id, "warning", c.id, [], Action("why")) for c in reversed(PATH)]
    assert [f.id for f in rank(found)] == [c.id for c in PATH]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", 300),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("20m0s", 1200),
        ("1m5ms", 60.005),
        ("1y1w1d1h1m1s1ms", 32230861.001),
    ],
)
def test_durations_parse_as_prometheus_does(text: str, expected: float) -> None:
    assert seconds(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "0", "m", "5", "5 minutes", "5s5m", "1m1m", "5M", "1.5h"])
def test_what_prometheus_refuses_is_no_duration(text: str) -> None:
    """prometheus/common model/time.go (ParseDuration): units y w d h m s ms, each once, in that order."""
    assert not is_duration(text)
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        seconds(text)


def test_duration_formats_whole_seconds_else_milliseconds() -> None:
    assert [duration(v) for v in (10, 0.5, 0.0001, 90)] == ["10s", "500ms", "1ms", "90s"]
