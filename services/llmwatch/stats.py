"""The one percentile of the project: the demo's KPIs, the load test's report and the benchmark use it."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values`` by linear interpolation between the two nearest ranks, as
    numpy's default (method="linear") and vLLM's benchmark reports compute it; None for no values.

    With n sorted values the percentile sits at rank (n - 1) * q / 100: p99 of 1..100 is 99.01, p50 of [1, 2] is
    1.5. Exact over the raw samples, unlike a histogram's bucket bounds.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile is between 0 and 100, not {q}")
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
