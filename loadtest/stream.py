"""One streamed chat completion, timed by vLLM's benchmark definitions (vllm/benchmarks/lib/endpoint_request_func.py).

- TTFT: request sent -> the first chunk whose delta carries content or reasoning (`reasoning`, or the older
  `reasoning_content`); the role-only first chunk does not count.
- ITL: every gap between two such token chunks.
- TPOT: (E2E - TTFT) / (output tokens - 1), output tokens from the final `usage` chunk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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

    __slots__ = ("chunks", "finish_reason", "itl", "last_token_at", "output_tokens", "sent_at", "ttft")

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at
        self.ttft: float | None = None
        self.last_token_at: float | None = None
        self.itl: list[float] = []
        self.output_tokens: int | None = None
        self.finish_reason: str | None = None
        self.chunks = 0

    def on_chunk(self, obj: dict[str, Any], now: float) -> bool:
        usage = obj.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.output_tokens = usage["completion_tokens"]
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content") or delta.get("reasoning") or delta.get("reasoning_content"):
                self.chunks += 1
                if self.last_token_at is None:
                    self.ttft = now - self.sent_at
                else:
                    self.itl.append(now - self.last_token_at)
                self.last_token_at = now
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return False  # nothing is forwarded, so nothing is stripped

    def tpot(self, e2e: float) -> float | None:
        out = self.output_tokens
        if self.ttft is None or out is None or out < 2:
            return None
        return (e2e - self.ttft) / (out - 1)
