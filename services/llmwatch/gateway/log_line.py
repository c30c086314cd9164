"""The access-log line of an Outcome (see access-log.schema.json): the one place that rounds and formats."""

from __future__ import annotations

import time
from typing import Any

from llmwatch.gateway.outcome import Outcome


def iso_utc_ms(epoch: float) -> str:
    """2026-11-25T09:30:00.123Z"""
    whole = int(epoch)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((epoch - whole) * 1000):03d}Z"


def log_line(o: Outcome, content_chars: int) -> dict[str, Any]:
    """The JSON object of one line; texts (present only when opted in) are cut to ``content_chars``."""
    line: dict[str, Any] = {
        "time": iso_utc_ms(o.started_wall),
        "request_id": o.request_id,
        "method": o.method,
        "path": o.path,
        "model": o.model,
        "kind": o.kind,
        "stream": o.stream,
        "status": o.status,
        "prompt_tokens": o.prompt_tokens,
        "completion_tokens": o.completion_tokens,
        "reasoning_tokens": o.reasoning_tokens,
        "answer_tokens": o.answer_tokens,
        "total_tokens": o.total_tokens,
        "duration_ms": _ms(o.duration),
        "ttft_ms": _ms(o.ttft),
        "time_to_answer_ms": _ms(o.time_to_answer),
        "tpot_ms": _ms(o.tpot),
        "tokens_per_s": None if o.tokens_per_s is None else round(o.tokens_per_s, 2),
        "finish_reason": o.finish_reason,
        "empty_response": o.empty,
        "answer_kind": o.answer_kind,
        "tool_calls": o.tool_calls,
        "tool_names": list(o.tool_names),
        "tools_offered": o.tools_offered,
        "response_format": o.response_format,
        "json_valid": o.json_valid,
        "error_type": o.error_type,
        "error_message": o.error_message,
        "upstream": o.upstream,
        "client_ip": o.client_ip,
        "user": o.user,
        "user_agent": o.user_agent,
    }
    if o.engine_prompt_per_token is not None:
        line["llamacpp_prompt_per_token_ms"] = _ms(o.engine_prompt_per_token)
    if o.engine_predicted_per_token is not None:
        line["llamacpp_predicted_per_token_ms"] = _ms(o.engine_predicted_per_token)
    for name in ("prompt", "reasoning", "completion"):
        text = getattr(o, name)
        if text is not None:
            line[name] = text[:content_chars]
    return line


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)
