"""One request inside the engine: its known output, its progress, and who hears about new tokens."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from llmwatch.vllm.cache import BLOCK_SIZE


class Listener(Protocol):
    """Told after every engine step that changed a sequence; returns False when the client is gone."""

    def emit(self, seq: Sequence, start: int, end: int, finish: str | None) -> bool: ...

    def drop(self, seq: Sequence) -> None: ...


@dataclass(eq=False)
class Sequence:
    """Output is decided up front (deterministic text); the engine only paces it. ``finish_reason`` is what
    ends the request once every token in ``tokens`` was sampled ("stop" when the last one is EOS)."""

    request_id: str
    prompt_tokens: int
    tokens: list[str]
    finish_reason: str
    listener: Listener
    arrival: float
    max_tokens_param: int | None = None
    not_before: float = 0.0  # injected ttft delay: not schedulable before this time
    extra_prefill_s: float = 0.0  # warm-up penalty, paid by the step that finishes this prefill
    stall_at: int | None = None
    stall_seconds: float = 0.0
    drop_at: int | None = None
    filtered: bool = False  # the sampler filters its logits by top-p/top-k (ChatRequest.filters_tokens)

    computed: int = 0  # tokens whose KV is in the cache
    generated: int = 0  # tokens sampled so far
    blocks: int = 0
    preemptions: int = 0
    first_scheduled: float | None = None
    first_token_at: float | None = None
    last_token_at: float = 0.0
    stall_until: float = 0.0
    state: str = "new"  # new -> waiting <-> running -> done
    done: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def pending(self) -> int:
        """Tokens to feed the model before the next sample: the prompt, or after preemption everything again."""
        return self.prompt_tokens + self.generated - self.computed

    def blocks_for(self, extra: int) -> int:
        return -(-(self.computed + extra) // BLOCK_SIZE)

    def stalled(self, now: float) -> bool:
        return now < self.stall_until
