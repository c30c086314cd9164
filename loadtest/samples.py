"""Raw samples of a run: warm-up exclusion and exact percentiles (Locust's own stats round response times)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from llmwatch.stats import percentile
from loadtest.stream import Sample

PERCENTILES = (50, 90, 95, 99)


def distribution(values: Sequence[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {"mean": float(np.mean(values)) if len(values) else None}
    out |= {f"p{q}": percentile(values, q) for q in PERCENTILES}
    return out


@dataclass(frozen=True)
class Warmup:
    """The first ``requests`` requests, and any request started in the first ``seconds``, are not judged."""

    requests: int = 0
    seconds: float = 0.0


def split_warmup(samples: Iterable[Sample], warmup: Warmup) -> tuple[list[Sample], list[Sample]]:
    """(warm-up samples, measured samples), by start time across every worker."""
    ordered = sorted(samples, key=lambda s: s.start)
    if not ordered:
        return [], []
    begin = ordered[0].start
    warm = [i < warmup.requests or s.start < begin + warmup.seconds for i, s in enumerate(ordered)]
    pairs = list(zip(ordered, warm, strict=True))
    return [s for s, w in pairs if w], [s for s, w in pairs if not w]


def window(samples: Sequence[Sample]) -> float:
    """Seconds from the first measured request's start to the last one's end."""
    if not samples:
        return 0.0
    return max(s.start + s.e2e for s in samples) - min(s.start for s in samples)


def short_of_rate(sent: int, rate: float, seconds: float) -> bool:
    """``sent`` arrivals in ``seconds`` fall short of ``rate`` by more than Poisson noise: more than 3 standard
    deviations (sqrt of the expected count) below the expected count."""
    expected = rate * seconds
    return sent < expected - 3 * math.sqrt(expected)
