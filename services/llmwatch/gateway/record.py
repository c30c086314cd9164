"""One request's facts, gathered on the way through and turned into exactly one access-log line at the end."""

from __future__ import annotations

import time
from typing import Any

from llmwatch.gateway.accounting import CompletionAccounting


def iso_utc_ms(epoch: float) -> str:
    """2026-11-25T09:30:00.123Z"""
    whole = int(epoch)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((epoch - whole) * 1000):03d}Z"


class RequestRecord:
    __slots__ = (
        "acct",
        "client_ip",
        "error_message",
        "error_type",
        "kind",
        "method",
        "model",
        "path",
        "prompt_text",
        "request_id",
        "started",
        "started_wall",
        "status",
        "stream",
        "upstream",
        "user",
        "user_agent",
    )

    def __init__(self, method: str, path: str, started: float, started_wall: float) -> None:
        self.method = method
        self.path = path
        self.started = started
        self.started_wall = started_wall
        self.request_id = ""
        self.model: str | None = None
        self.kind = "other"
        self.stream = False
        self.status = 500
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.upstream: str | None = None
        self.client_ip: str | None = None
        self.user: str | None = None
        self.user_agent: str | None = None
        self.acct: CompletionAccounting | None = None
        self.prompt_text: str | None = None

    def fail(self, error_type: str, status: int, message: str | None) -> None:
        self.error_type, self.status, self.error_message = error_type, status, message

    def line(self, ended: float, content_chars: int | None) -> dict[str, Any]:
        """The access-log line (see access-log.schema.json). ``content_chars`` set = texts are logged."""
        acct = self.acct
        duration = ended - self.started
        prompt = completion = reasoning = total = None
        ttft = answer = tpot = rate = None
        finish = None
        empty = False
        if acct is not None:
            acct.finish()
            prompt, completion, reasoning, total = acct.token_counts(self.stream)
            finish = acct.finish_reason
            if self.stream and acct.first_token_at is not None:
                ttft = acct.first_token_at - self.started
                if acct.answer_at is not None:
                    answer = acct.answer_at - self.started
                if completion is not None and completion > 1 and duration > ttft:
                    tpot = (duration - ttft) / (completion - 1)
                    rate = 1.0 / tpot
            elif not self.stream and completion and duration > 0:
                rate = completion / duration
            empty = self.status == 200 and (completion == 0 or acct.answer_blank)
        line: dict[str, Any] = {
            "time": iso_utc_ms(self.started_wall),
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "model": self.model,
            "kind": self.kind,
            "stream": self.stream,
            "status": self.status,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "reasoning_tokens": reasoning,
            "answer_tokens": None if completion is None or reasoning is None else completion - reasoning,
            "total_tokens": total,
            "duration_ms": _ms(duration),
            "ttft_ms": _ms(ttft),
            "time_to_answer_ms": _ms(answer),
            "tpot_ms": _ms(tpot),
            "tokens_per_s": None if rate is None else round(rate, 2),
            "finish_reason": finish,
            "empty_response": empty,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "upstream": self.upstream,
            "client_ip": self.client_ip,
            "user": self.user,
            "user_agent": self.user_agent,
        }
        if content_chars is not None:
            if self.prompt_text is not None:
                line["prompt"] = self.prompt_text[:content_chars]
            if acct is not None:
                line["reasoning"] = "".join(acct.reasoning_text)[:content_chars]
                line["completion"] = "".join(acct.answer_text)[:content_chars]
        return line


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)
