"""What a completion contained: tokens, reasoning vs answer, first-token times, finish reason.

Streamed responses are fed chunk by chunk (parsed JSON objects), non-streamed ones once. Reasoning is read from
`reasoning` (vLLM >= 0.10), falling back to `reasoning_content`; with no reasoning parser on the engine, inline
`<think>...</think>` in the content is split instead. When usage carries no `reasoning_tokens`, completion tokens are
apportioned: by delta count when streamed (vLLM sends about one token per delta), by character count otherwise.
"""

from __future__ import annotations

from typing import Any

from llmwatch.gateway.usage import checked_finish_reason, checked_usage

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


class CompletionAccounting:
    __slots__ = (
        "_keep_text",
        "_parser_seen",
        "_pending",
        "_pending_nonblank_at",
        "_pending_text",
        "_prefix",
        "_tail",
        "anomalies",
        "answer_at",
        "answer_deltas",
        "answer_text",
        "finish_reason",
        "first_token_at",
        "inline_done",
        "reasoning_deltas",
        "reasoning_text",
        "stream_error",
        "timings",
        "usage",
    )

    def __init__(self, keep_text: bool = False) -> None:
        self._keep_text = keep_text
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, Any] | None = None  # llama.cpp's own per-request timings
        self.finish_reason: str | None = None
        self.stream_error: str | None = None
        self.anomalies: list[str] = []  # engine protocol violations seen (usage.py)
        self.first_token_at: float | None = None
        self.answer_at: float | None = None
        self.reasoning_deltas = 0
        self.answer_deltas = 0
        self.reasoning_text: list[str] = []
        self.answer_text: list[str] = []
        # Content seen before we know whether it is inline reasoning or answer.
        self._parser_seen = False
        self.inline_done = False
        self._pending = 0
        self._pending_text: list[str] = []
        self._pending_nonblank_at: float | None = None
        self._prefix = ""
        self._tail = ""

    # -- streamed ---------------------------------------------------------------------------------------------
    def on_chunk(self, obj: dict[str, Any], now: float) -> bool:
        """Account one streamed chunk; True when it is a usage-only chunk (no choices)."""
        usage = obj.get("usage")
        if usage:
            self.usage = checked_usage(usage, self.anomalies)
            self._take_timings(obj)  # llama.cpp sends its timings with the usage chunk
        error = obj.get("error")
        if error is not None:
            self.stream_error = str(error.get("message") if isinstance(error, dict) else error)[:300]
        choices = obj.get("choices")
        if not choices:
            return usage is not None
        for choice in choices:
            delta = choice.get("delta")
            if delta is not None:
                reasoning = delta.get("reasoning") or delta.get("reasoning_content")
                content = delta.get("content")
            else:
                reasoning, content = None, choice.get("text")
            if reasoning:
                self._on_reasoning(reasoning, now)
            if content:
                self._on_content(content, now)
            if self.finish_reason is None:
                self.finish_reason = checked_finish_reason(choice.get("finish_reason"), self.anomalies)
        return False

    def _on_reasoning(self, text: str, now: float) -> None:
        self._parser_seen = True
        if self.first_token_at is None:
            self.first_token_at = now
        self.reasoning_deltas += 1
        if self._keep_text:
            self.reasoning_text.append(text)

    def _on_content(self, text: str, now: float) -> None:
        if self.first_token_at is None:
            self.first_token_at = now
        if self._parser_seen or self.inline_done:
            self._on_answer(text, now)
            return
        # No reasoning field so far: this may be inline <think> text; decide when </think> shows up or at the end.
        if not self._prefix:
            self._prefix = text.lstrip()[: len(THINK_OPEN)]
        window = self._tail + text
        cut = window.find(THINK_CLOSE)
        if cut < 0:
            self._hold(text, now)
            self._tail = window[-len(THINK_CLOSE) :]
            return
        after = window[cut + len(THINK_CLOSE) :]
        self._hold(text[: max(0, len(text) - len(after))], now)
        self._settle(as_reasoning=True)
        self.inline_done = True
        if after:
            self._on_answer(after, now, count=False)  # the boundary delta already counted as reasoning

    def _hold(self, text: str, now: float) -> None:
        self._pending += 1
        if self._keep_text:
            self._pending_text.append(text)
        if self._pending_nonblank_at is None and text.strip():
            self._pending_nonblank_at = now

    def _settle(self, as_reasoning: bool) -> None:
        if as_reasoning:
            self.reasoning_deltas += self._pending
            self.reasoning_text.extend(self._pending_text)
        else:
            self.answer_deltas += self._pending
            self.answer_at = self._pending_nonblank_at
            self.answer_text.extend(self._pending_text)
        self._pending, self._pending_text = 0, []

    def _on_answer(self, text: str, now: float, count: bool = True) -> None:
        self.answer_deltas += count
        if self.answer_at is None and text.strip():
            self.answer_at = now
        if self._keep_text:
            self.answer_text.append(text)

    def finish(self) -> None:
        """Settle content whose role was undecided: opened with <think> and never closed = reasoning, else answer."""
        if self._pending:
            self._settle(as_reasoning=self._prefix.startswith(THINK_OPEN))

    # -- non-streamed -----------------------------------------------------------------------------------------
    def on_response(self, obj: dict[str, Any]) -> None:
        """Account a whole (non-streamed) chat.completion or text_completion body."""
        self.usage = checked_usage(obj.get("usage"), self.anomalies)
        self._take_timings(obj)
        choices = obj.get("choices") or []
        for choice in choices[:1]:
            self.finish_reason = checked_finish_reason(choice.get("finish_reason"), self.anomalies)
            message = choice.get("message")
            if isinstance(message, dict):
                reasoning = message.get("reasoning") or message.get("reasoning_content") or ""
                content = message.get("content") or ""
            else:
                reasoning, content = "", choice.get("text") or ""
            if not reasoning:
                reasoning, content = split_inline_think(content)
            self.reasoning_deltas = 1 if reasoning else 0
            self.answer_deltas = 1 if content else 0
            self.answer_text = [content]
            self.reasoning_text = [reasoning]

    # -- results ----------------------------------------------------------------------------------------------
    @property
    def answer_blank(self) -> bool:
        if self._keep_text or self.answer_text:
            return not "".join(self.answer_text).strip()
        return self.answer_at is None

    def token_counts(self, streamed: bool) -> tuple[int | None, int | None, int | None, int | None]:
        """(prompt, completion, reasoning, total) tokens; from usage, apportioned where usage is silent."""
        usage = self.usage or {}
        prompt = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        if completion is None and streamed:
            completion = self.reasoning_deltas + self.answer_deltas
        total = _int(usage.get("total_tokens"))
        if total is None and prompt is not None and completion is not None:
            total = prompt + completion
        details = usage.get("completion_tokens_details")
        reasoning = _int(details.get("reasoning_tokens")) if isinstance(details, dict) else None
        if reasoning is None and completion is not None:
            reasoning = self._apportion(completion, streamed)
        return prompt, completion, reasoning, total

    def _take_timings(self, obj: dict[str, Any]) -> None:
        timings = obj.get("timings")
        if isinstance(timings, dict):
            self.timings = timings

    def engine_per_token_seconds(self) -> tuple[float | None, float | None]:
        """(prompt, predicted) seconds per token as llama.cpp measured them (its `timings`), else None."""
        timings = self.timings or {}
        return _seconds(timings.get("prompt_per_token_ms")), _seconds(timings.get("predicted_per_token_ms"))

    def _apportion(self, completion: int, streamed: bool) -> int:
        if streamed:
            thought, said = self.reasoning_deltas, self.answer_deltas
        else:
            # Non-streamed bodies always keep their texts (on_response).
            thought, said = sum(map(len, self.reasoning_text)), sum(map(len, self.answer_text))
        if not thought:
            return 0
        if not said:
            return completion
        return min(completion, round(completion * thought / (thought + said)))


def split_inline_think(content: str) -> tuple[str, str]:
    """(reasoning, answer) of text that may carry inline `<think>...</think>`."""
    cut = content.find(THINK_CLOSE)
    if cut >= 0:
        reasoning = content[:cut]
        stripped = reasoning.lstrip()
        if stripped.startswith(THINK_OPEN):
            reasoning = stripped[len(THINK_OPEN) :]
        return reasoning, content[cut + len(THINK_CLOSE) :]
    stripped = content.lstrip()
    if stripped.startswith(THINK_OPEN):
        return stripped[len(THINK_OPEN) :], ""
    return "", content


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _seconds(ms: Any) -> float | None:
    return ms / 1000.0 if isinstance(ms, int | float) and not isinstance(ms, bool) and ms >= 0 else None
