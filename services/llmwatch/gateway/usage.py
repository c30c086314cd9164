"""What the engine reports about a completion, checked before anything counts it: `usage`, `finish_reason`, and
llama.cpp's `timings`.

An engine that sends a `usage` that is not an object, counts that are not non-negative integers, or a non-string
`finish_reason` breaks the OpenAI protocol. That is an anomaly to log and count, never an exception: the request
still gets its access-log line, and the counts that are valid still count.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
_MAX_SHOWN = 80


def checked_usage(value: Any, anomalies: list[str]) -> dict[str, Any] | None:
    """The engine's ``usage`` with only valid counts kept; each problem is appended to ``anomalies``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        _note(anomalies, "usage", value)
        return None
    usage: dict[str, Any] = {}
    for name in _COUNTS:
        count = value.get(name)
        if count is None:
            continue
        if _count(count):
            usage[name] = count
        else:
            _note(anomalies, f"usage.{name}", count)
    details = value.get("completion_tokens_details")
    if isinstance(details, dict):
        reasoning = details.get("reasoning_tokens")
        if _count(reasoning):
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        elif reasoning is not None:
            _note(anomalies, "usage.completion_tokens_details.reasoning_tokens", reasoning)
    elif details is not None:
        _note(anomalies, "usage.completion_tokens_details", details)
    return usage


def checked_finish_reason(value: Any, anomalies: list[str]) -> str | None:
    if value is None or isinstance(value, str):
        return value
    _note(anomalies, "finish_reason", value)
    return None


def per_token_seconds(timings: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """(prompt, predicted) seconds per token from llama.cpp's `timings` (milliseconds), each None if not valid."""
    timings = timings or {}
    return _seconds(timings.get("prompt_per_token_ms")), _seconds(timings.get("predicted_per_token_ms"))


def _seconds(ms: Any) -> float | None:
    return ms / 1000.0 if isinstance(ms, int | float) and not isinstance(ms, bool) and ms >= 0 else None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _note(anomalies: list[str], field: str, value: Any) -> None:
    anomalies.append(field)
    log.warning("the engine sent an invalid %s (%.80r); it is not counted", field, value)
