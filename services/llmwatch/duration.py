"""Prometheus durations (5m, 1h30m, 500ms): the one parser and formatter of the project.

The grammar is Prometheus's own (prometheus/common `model/time.go`, ParseDuration): integer amounts of y, w, d, h, m,
s, ms, each unit at most once and in that order. Prometheus also takes a bare "0"; here a duration is a window, so
it must have a unit.
"""

from __future__ import annotations

import re

UNIT_S: dict[str, float] = {"y": 31536000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
# One alternation-free pattern, usable inside a larger regex (a range selector `[5m]`, an `offset 1h`).
PATTERN = r"(?=\d)(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m(?!s))?(?:\d+s)?(?:\d+ms)?"
_FULL = re.compile(PATTERN)
_PART = re.compile(r"(\d+)(ms|[ywdhms])")


def is_duration(text: str) -> bool:
    """``text`` is a Prometheus duration with at least one unit."""
    return _FULL.fullmatch(text) is not None


def seconds(duration: str) -> float:
    """A Prometheus duration in seconds; ValueError for anything else."""
    if not is_duration(duration):
        raise ValueError(f"not a Prometheus duration (such as 5m, 1h30m or 500ms): {duration!r}")
    return sum(int(n) * UNIT_S[unit] for n, unit in _PART.findall(duration))


def duration(value_s: float) -> str:
    """``value_s`` as the shortest Prometheus duration in whole seconds, else milliseconds (at least 1ms)."""
    ms = max(1, round(value_s * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"
