"""The median of per-repetition medians, and ratios against the direct path (percentiles: llmwatch.stats)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

# Metrics one measurement yields; None where it does not apply (TTFT of a non-streamed request).
Summary = dict[str, float | None]

# How each metric compares with the direct path: latencies as added ms, throughputs as a factor.
ADDED_MS = ("lat_p50_ms", "lat_p99_ms", "ttft_p50_ms", "ttft_p99_ms")
FACTOR = ("rps", "tokens_per_s", "events_per_s")


def median_of(reps: Sequence[Summary], key: str) -> float | None:
    """Median over repetitions of one metric, skipping repetitions where it is None."""
    values = [v for rep in reps if (v := rep.get(key)) is not None]
    return statistics.median(values) if values else None


def combine(reps: Sequence[Summary]) -> Summary:
    """One summary per (workload, path): every metric is the median of its per-repetition values."""
    keys = sorted({k for rep in reps for k in rep})
    return {k: median_of(reps, k) for k in keys}


def versus_direct(path: Mapping[str, float | None], direct: Mapping[str, float | None]) -> Summary:
    """Added ms for latencies, x-factor for throughputs; None where either side is missing."""
    out: Summary = {}
    for key in ADDED_MS:
        mine, base = path.get(key), direct.get(key)
        out[f"{key}_added"] = None if mine is None or base is None else mine - base
    for key in FACTOR:
        mine, base = path.get(key), direct.get(key)
        out[f"{key}_x"] = None if mine is None or not base else mine / base
    return out
