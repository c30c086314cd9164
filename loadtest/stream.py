"""One streamed chat completion, timed by vLLM's benchmark definitions (vllm/benchmarks/lib/endpoint_request_func.py).

- TTFT: request sent -> the first chunk whose delta carries content, reasoning (`reasoning`, or the older
  `reasoning_content`) or a tool call (`tool_calls`); the role-only first chunk does not count.
- ITL: every gap between two such token chunks.
- TPOT: (E2E - TTFT) / (output tokens - 1), output tokens from the final `usage` chunk.

What the answer was (text, tool calls, reasoning only, nothing) is decided by llmwatch.answers, the gateway's rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llmwatch.answers import AnswerKind, answer_kind

MAX_TOOL_INDEXES = 256  # distinct tool-call indexes remembered per request


@dataclass
class Sample:
    """What one request measured. Times are seconds; ``start`` is wall-clock (comparable across workers)."""

    start: float
    e2e: float
    ok: bool
    ttft: float | None = None
    tpot: float | None = None
    itl: list[float] = field(default_factory=list)
    output_tokens: int | None = None
    empty: bool = False
    answer_kind: str = ""  # llmwatch.answers' kind of a completed stream; "" when it failed
    error: str | None = None
    prompt: str = ""
    request_id: str = ""  # sent as X-Request-Id: the gateway's access log carries the same id

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Sample:
        return cls(**data)


class StreamTiming:
    """Feed it every SSE event (`SSEScanner`'s ``on_chunk``); ``sample`` gives the request's numbers."""

    __slots__ = (
        "chunks", "finish_reason", "itl", "last_token_at", "output_tokens", "reasoning", "sent_at", "text",
        "tool_indexes", "ttft",
    )  # fmt: skip

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at
        self.ttft: float | None = None
        self.last_token_at: float | None = None
        self.itl: list[float] = []
        self.output_tokens: int | None = None
        self.finish_reason: str | None = None
        self.chunks = 0
        self.text = False  # a non-blank content delta
        self.reasoning = False
        self.tool_indexes: set[int] = set()

    def on_chunk(self, obj: dict[str, Any], now: float) -> bool:
        usage = obj.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.output_tokens = usage["completion_tokens"]
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") or {}
            content, calls = delta.get("content"), delta.get("tool_calls")
            thought = delta.get("reasoning") or delta.get("reasoning_content")
            if content or thought or calls:
                self.chunks += 1
                self.text = self.text or (isinstance(content, str) and bool(content.strip()))
                self.reasoning = self.reasoning or bool(thought)
                for call in calls if isinstance(calls, list) else ():
                    index = call.get("index") if isinstance(call, dict) else None
                    if isinstance(index, int) and len(self.tool_indexes) < MAX_TOOL_INDEXES:
                        self.tool_indexes.add(index)
                if self.last_token_at is None:
                    self.ttft = now - self.sent_at
                else:
                    self.itl.append(now - self.last_token_at)
                self.last_token_at = now
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return False  # nothing is forwarded, so nothing is stripped

    def answer_kind(self) -> AnswerKind:
        return answer_kind(self.text, len(self.tool_indexes), self.reasoning, self.output_tokens)

    def tpot(self, e2e: float) -> float | None:
        out = self.output_tokens
        if self.ttft is None or out is None or out < 2:
            return None
        return (e2e - self.ttft) / (out - 1)
