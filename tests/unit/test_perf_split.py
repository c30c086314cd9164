"""`overhead.py --perf`'s reading of Linux perf's reports, on perf 6.1's own output for the gateway and nginx under
`sse-rate` on this machine (tests/fixtures/perf/, as `perf report --stdio -g none -n` printed them, gzipped)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from bench.perf_split import COLUMNS, Split, split_of, table

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "perf"


def _split(proxy: str) -> Split:
    dso, sym = (
        gzip.decompress((FIXTURES / f"sse-rate-{proxy}-{k}.txt.gz").read_bytes()).decode() for k in ("dso", "sym")
    )
    return split_of(dso, sym)


def test_the_gateways_samples_fall_in_its_system_calls_and_its_own_files() -> None:
    split = _split("gateway")
    assert split.samples == 4372 + 1783 + 429 + 192 + 177 + 13 + 6 + 1 + 1  # every line of the dso report
    s = split.shares
    assert s["kernel: send"] == pytest.approx(0.3578)  # ksys_write with its callees
    assert s["kernel: receive"] == pytest.approx(0.2296)  # ksys_read
    assert s["kernel: wait"] == pytest.approx(0.0235)
    assert s["kernel: other"] == pytest.approx(4372 / split.samples - (0.3578 + 0.2296 + 0.0235))
    assert s["interpreter"] == pytest.approx(1783 / split.samples)
    assert s["event loop"] == pytest.approx(429 / split.samples)
    assert s["HTTP parser"] == pytest.approx((177 + 1) / split.samples)  # httptools' parser and url_parser
    assert s["nginx"] == 0
    assert sum(s.values()) == pytest.approx(1.0)


def test_nginx_sends_with_writev_and_receives_with_recvfrom() -> None:
    s = _split("nginx").shares
    assert s["kernel: send"] == pytest.approx(0.5064 + 0.0009)  # do_writev, and a few write(2)s (its log)
    assert s["kernel: receive"] == pytest.approx(0.2899)
    assert s["interpreter"] == 0 and s["nginx"] > 0.1
    assert sum(s.values()) == pytest.approx(1.0)


def test_a_report_without_samples_is_refused() -> None:
    with pytest.raises(ValueError, match="no samples"):
        split_of("# Samples: 0\n", "")


def test_the_table_gives_each_group_its_part_of_the_cpu_per_event() -> None:
    split = Split(100, {c: (0.5 if c == "kernel: send" else 0.5 if c == "interpreter" else 0.0) for c in COLUMNS})
    header, _, row = table([("gateway", 20.0, split)], "event")
    assert header.startswith("| path | CPU µs per event | kernel: send |")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["gateway", "20.0", "10.0"]
    assert cells[2 + COLUMNS.index("interpreter")] == "10.0"
    assert cells.count("–") == len(COLUMNS) - 2
