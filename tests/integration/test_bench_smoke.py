"""`bench/overhead.py --quick` end to end: every path completes its requests without errors. Nothing about speed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, need_binary

pytestmark = pytest.mark.integration

WORKLOADS = {
    "json-c1": (False, 1),
    "json-c16": (False, 16),
    "sse-c1": (True, 1),
    "sse-c16": (True, 16),
    "sse-c64": (True, 64),
    "ttft-c1": (True, 1),
    "sse-rate": (True, 256),
    "sse-4eng": (True, 256),
}
PACED = ("sse-rate", "sse-4eng")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    need_binary("nginx")
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "overhead.py"), "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"overhead.py --quick exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return json.loads((out / "results.json").read_text()), out


def test_every_path_ran_or_says_why_not(quick_run: tuple[dict[str, Any], Path]) -> None:
    doc, _ = quick_run
    assert doc["quick"] is True
    assert {"direct", "gateway", "nginx"} <= set(doc["paths"])
    if "litellm" not in doc["paths"]:
        assert "venv" in doc["skipped"]["litellm"], doc["skipped"]
    assert set(doc["paths"]).isdisjoint(doc["skipped"])
    assert [w["name"] for w in doc["workloads"]] == list(WORKLOADS)


def test_every_path_completed_every_request(quick_run: tuple[dict[str, Any], Path]) -> None:
    doc, _ = quick_run
    for wl, (stream, concurrency) in WORKLOADS.items():
        sat_out = doc["skipped_workloads"].get(wl, {})
        assert set(sat_out) <= {"litellm"}, (wl, sat_out)
        assert set(doc["results"][wl]) == set(doc["paths"]) - set(sat_out), (wl, sat_out)
        for path in doc["results"][wl]:
            entry = doc["results"][wl][path]
            med = entry["median"]
            assert entry["total_errors"] == 0, (wl, path, entry["error_samples"])
            assert med["requests"] >= concurrency, (wl, path, med)
            assert med["lat_p50_ms"] > 0 and med["lat_p99_ms"] >= med["lat_p50_ms"], (wl, path, med)
            if stream:
                assert med["tokens_per_s"] > 0 and 0 < med["ttft_p50_ms"] <= med["lat_p99_ms"], (wl, path, med)
                # Every event of every completed stream: role, tokens (32 in quick mode, or 1), usage, [DONE]; LiteLLM
                # re-renders streams and sends more events than it gets.
                tokens = min(32, next(w["max_tokens"] for w in doc["workloads"] if w["name"] == wl))
                events = med["tokens_per_s"] * (tokens + 3) / tokens
                if path == "litellm":
                    assert med["events_per_s"] >= events * 0.999, (wl, path, med)
                else:
                    assert med["events_per_s"] == pytest.approx(events), (wl, path, med)
                assert (med["proxy_cpu_us_per_event"] is None) == (path == "direct"), (wl, path, med)
            else:
                assert med["ttft_p50_ms"] is None and med["tokens_per_s"] is None, (wl, path, med)
                assert med["events_per_s"] is None, (wl, path, med)
            if wl in PACED:
                assert med["offered_events_per_s"] > 0 and entry["limit"], (wl, path, entry)
                assert (entry["ceiling_events_per_s"] is None) == (path == "direct"), (wl, path, entry)
            # A proxy's CPU is counted; the direct path has none.
            assert (med["proxy_cpu_s_per_1k"] is None) == (path == "direct"), (wl, path, med)
            if path != "direct":
                assert entry["vs_direct"]["lat_p50_ms_added"] is not None
                assert entry["vs_direct"]["rps_x"] > 0


def test_outputs_table_goals_and_a_production_like_gateway(quick_run: tuple[dict[str, Any], Path]) -> None:
    doc, out = quick_run
    assert [g["target"] for g in doc["goals"]] == [
        "<= 1 ms", "<= 1 ms", "<= 1 ms", ">= 0.8x", "<= 1/20 (0.05)", "<= 12 µs", "<= 12 µs"
    ]  # fmt: skip
    # Every goal but the LiteLLM comparison needs only direct + gateway, which always run.
    measured = [g for i, g in enumerate(doc["goals"]) if i != 4]
    assert all(g["value"] is not None and g["ok"] in (True, False) for g in measured), doc["goals"]
    md = (out / "RESULTS.md").read_text()
    assert "| path | req/s | tokens/s | p50 | p99 | TTFT p50 | TTFT p99 |" in md
    assert "| path | req/s | tokens/s | p50 | p99 | TTFT p50 | TTFT p99 | events/s | proxy CPU µs/event |" in md
    assert "ceiling (extrapolated)" in md and "| sse-4eng | gateway |" in md
    for path in doc["paths"]:
        assert f"| {path} |" in md
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["python"]
    # The gateway ran as in production: one JSON access-log line per proxied request, written to its file; the
    # one in front of the four engines is its own process, with its own file.
    for log, workloads in (
        ("gateway-access.log", set(WORKLOADS) - {"sse-4eng"}),
        ("gateway-x4-access.log", {"sse-4eng"}),
    ):
        lines = (out / "logs" / log).read_text().splitlines()
        proxied = sum(doc["results"][wl]["gateway"]["median"]["requests"] for wl in workloads)
        assert len(lines) >= proxied
        assert all(json.loads(line) for line in lines[-5:])
    # sse-4eng's gateway spread its streams over the four engines (least-in-flight), one engine for the others'.
    engines = Counter(json.loads(line)["upstream"] for line in (out / "logs" / "gateway-x4-access.log").open())
    assert len(engines) == 4 and min(engines.values()) >= 32, engines
    assert len({json.loads(line)["upstream"] for line in (out / "logs" / "gateway-access.log").open()}) == 1


def test_perf_splits_each_proxys_cpu_into_kernel_and_own_code(tmp_path: Path) -> None:
    """`--perf` end to end under real perf: a row per proxy whose parts add up to its CPU per event; the gateway's
    Python shows in the interpreter's column, nginx's own code in its own."""
    need_binary("nginx")
    need_binary("perf")
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "overhead.py"), "--perf", "--paths", "gateway,nginx",
         "--profile-workload", "sse-c16", "--profile-seconds", "2", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, f"overhead.py --perf exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    lines = (tmp_path / "perf-split.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| path |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] in ("gateway", "nginx"):
            rows[cells[0]] = {c: 0.0 if v == "–" else float(v) for c, v in zip(columns[1:], cells[1:], strict=True)}
    assert set(rows) == {"gateway", "nginx"}
    for row in rows.values():
        total = row.pop("CPU µs per event")
        assert total > 0 and row["kernel: send"] > 0 and row["kernel: receive"] > 0
        assert sum(row.values()) == pytest.approx(total, abs=0.1 * len(row))  # each part rounded to 0.1
    assert rows["gateway"]["interpreter"] > 0 and rows["gateway"]["nginx"] == 0
    assert rows["nginx"]["nginx"] > 0 and rows["nginx"]["interpreter"] == 0
