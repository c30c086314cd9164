"""The access-log line of an Outcome (see access-log.schema.json): the one place that rounds and formats."""

from __future__ import annotations

import time
from typing import Any

from llmwatch.gateway.outcome import Outcome

# Every logged string is cut, so no field can be larger than Elasticsearch's keyword limit or roll the log file over.
MAX_LOGGED_CHARS = 200
# Engine error messages say what to change and are a little longer; Elasticsearch indexes them as text.
MAX_ERROR_MESSAGE_CHARS = 300


_last_second: list[tuple[int, str]] = [(-1, "")]  # the second formatted last: most lines share it


def iso_utc_ms(epoch: float) -> str:
    """2026-11-25T09:30:00.123Z"""
    whole = int(epoch)
    second, text = _last_second[0]
    if second != whole:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _last_second[0] = (whole, text)
    return f"{text}.{int((epoch - whole) * 1000):03d}Z"


def log_line(o: Outcome, content_chars: int) -> dict[str, Any]:
    """The JSON object of one line; texts (present only when opted in) are cut to ``content_chars``."""
    line: dict[str, Any] = {
        "time": iso_utc_ms(o.started_wall),
        "request_id": _cut(o.request_id),
        "method": _cut(o.method),
        "path": _cut(o.path),
        "model": _cut(o.model),
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
        "finish_reason": _cut(o.finish_reason),
        "empty_response": o.empty,
        "answer_kind": o.answer_kind,
        "tool_calls": o.tool_calls,
        "tool_names": list(o.tool_names),
        "tools_offered": o.tools_offered,
        "response_format": o.response_format,
        "json_valid": o.json_valid,
        "error_type": o.error_type,
        "error_message": None if o.error_message is None else o.error_message[:MAX_ERROR_MESSAGE_CHARS],
        "upstream": _cut(o.upstream),
        "client_ip": _cut(o.client_ip),
        "user": _cut(o.user),
        "user_agent": _cut(o.user_agent),
    }
    if o.client_request_id is not None:
        line["client_request_id"] = o.client_request_id[:MAX_LOGGED_CHARS]
    if o.engine_prompt_per_token is not None:
        line["llamacpp_prompt_per_token_ms"] = _ms(o.engine_prompt_per_token)
    if o.engine_predicted_per_token is not None:
        line["llamacpp_predicted_per_token_ms"] = _ms(o.engine_predicted_per_token)
    for name in ("prompt", "reasoning", "completion"):
        text = getattr(o, name)
        if text is not None:
            line[name] = text[:content_chars]
    return line


def _cut(text: str | None) -> str | None:
    return text if text is None or len(text) <= MAX_LOGGED_CHARS else text[:MAX_LOGGED_CHARS]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)
