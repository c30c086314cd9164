"""What a completion contained: tokens, reasoning vs answer, first-token times, finish reason.

Streamed responses are fed chunk by chunk (parsed JSON objects), non-streamed ones once. Reasoning is read from
`reasoning` (vLLM >= 0.10), falling back to `reasoning_content`; with no reasoning parser on the engine, inline
`<think>...</think>` in the content is split instead (think.py). Token counts: tokens.py.

Tool calls (`delta.tool_calls` streamed, `message.tool_calls` whole) are answers: they set the first-token and
answer times and count as answer deltas; tool_calls.py counts them and keeps their names. When the client asked for
a JSON response format, json_answer.py keeps the answer text so that its validity can be judged once.
"""

from __future__ import annotations

from typing import Any

from llmwatch.answers import AnswerKind, answer_kind
from llmwatch.gateway.json_answer import MAX_JSON_CHARS, parses
from llmwatch.gateway.think import THINK_CLOSE, THINK_OPEN, split_inline_think
from llmwatch.gateway.tokens import TokenCounts, token_counts
from llmwatch.gateway.tool_calls import ToolCalls
from llmwatch.gateway.usage import checked_finish_reason, checked_usage, per_token_seconds


class CompletionAccounting:
    # fmt: off
    __slots__ = (
        "_body_text", "_chunks", "_json", "_json_chars", "_keep_text", "_parser_seen", "_pending",
        "_pending_nonblank_at", "_pending_text", "_prefix", "_tail", "_tool_chars", "_tools", "anomalies", "answer_at",
        "answer_deltas", "answer_text", "finish_reason", "first_token_at", "inline_done", "reasoning_deltas",
        "reasoning_text", "stream_error", "timings", "usage",
    )
    # fmt: on

    def __init__(self, keep_text: bool = False, check_json: bool = False) -> None:
        self._keep_text = keep_text
        # Answer text of a JSON-format request, up to MAX_JSON_CHARS; None when not asked (or over the cap).
        self._json: list[str] | None = [] if check_json else None
        self._json_chars = 0
        self._chunks = 0  # streamed chunks that carried choices
        self._tool_chars = 0  # non-streamed: characters of the tool calls' arguments
        self._body_text = False  # non-streamed: the body's answer text is non-blank
        self._tools = ToolCalls()
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
        if not choices or not isinstance(choices, list):
            return usage is not None
        self._chunks += 1
        for choice in choices:
            delta = choice.get("delta")
            calls = None
            if delta is not None:
                reasoning = delta.get("reasoning") or delta.get("reasoning_content")
                content = delta.get("content")
                calls = delta.get("tool_calls")
            else:
                reasoning, content = None, choice.get("text")
            if reasoning:
                self._on_reasoning(reasoning, now)
            if content:
                self._on_content(content, now)
            if calls and isinstance(calls, list):
                self._on_tool_calls(calls, now)
            if self.finish_reason is None and (reason := choice.get("finish_reason")) is not None:
                self.finish_reason = checked_finish_reason(reason, self.anomalies)  # null on nearly every chunk
        return False

    def on_plain_delta(self, reasoning: bool) -> bool:
        """Account a plain one-field delta recognised on the wire (delta_template.py) as on_chunk would, when its
        text is not needed: no text kept, no JSON answer to judge, first-token and answer times already taken, and
        no inline-<think> question open. False: on_chunk must have the parsed event."""
        if self._keep_text:
            return False
        if reasoning:
            if not self._parser_seen:
                return False
            self.reasoning_deltas += 1
        else:
            if self.answer_at is None or self._json is not None or not (self._parser_seen or self.inline_done):
                return False
            self.answer_deltas += 1
        self._chunks += 1
        return True

    def _on_reasoning(self, text: str, now: float) -> None:
        self._parser_seen = True
        if self.first_token_at is None:
            self.first_token_at = now
        self.reasoning_deltas += 1
        if self._keep_text:
            self.reasoning_text.append(text)

    def _on_tool_calls(self, calls: list[Any], now: float) -> None:
        """One streamed tool-call delta: a new call (an unseen index) or more of a call's arguments."""
        if self.first_token_at is None:
            self.first_token_at = now
        if not self._parser_seen and not self.inline_done:
            self.finish()  # text held as maybe-inline-reasoning is settled: the tool parser has spoken
            self.inline_done = True
        self.answer_deltas += 1
        if self.answer_at is None:
            self.answer_at = now
        self._tools.on_delta(calls)

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
        if self._keep_text or (self._json is not None and len(self._pending_text) < MAX_JSON_CHARS):
            self._pending_text.append(text)  # JSON check only: at most MAX_JSON_CHARS deltas, judged at the end
        if self._pending_nonblank_at is None and text.strip():
            self._pending_nonblank_at = now

    def _settle(self, as_reasoning: bool) -> None:
        if as_reasoning:
            self.reasoning_deltas += self._pending
            if self._keep_text:
                self.reasoning_text.extend(self._pending_text)
        else:
            self.answer_deltas += self._pending
            if self.answer_at is None:
                self.answer_at = self._pending_nonblank_at
            if self._keep_text:
                self.answer_text.extend(self._pending_text)
            for text in self._pending_text:
                self._keep_json(text)
            if self._pending > len(self._pending_text):
                self._json = None  # some of it was not kept: not judged
        self._pending, self._pending_text = 0, []

    def _on_answer(self, text: str, now: float, count: bool = True) -> None:
        self.answer_deltas += count
        if self.answer_at is None and text.strip():
            self.answer_at = now
        if self._keep_text:
            self.answer_text.append(text)
        self._keep_json(text)

    def _keep_json(self, text: str) -> None:
        if self._json is None:
            return
        self._json_chars += len(text)
        if self._json_chars > MAX_JSON_CHARS:
            self._json = None  # too long to judge: json_valid stays null
        else:
            self._json.append(text)

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
            if isinstance(message, dict):
                self._tool_chars += self._tools.on_message(message.get("tool_calls"))
            self.reasoning_deltas = 1 if reasoning else 0
            self.answer_deltas = 1 if content or self.tool_calls else 0
            self.answer_text = [content]
            self.reasoning_text = [reasoning]
            self._body_text = bool(content.strip())
            if self._json is not None:
                self._json = [content] if len(content) <= MAX_JSON_CHARS else None

    # -- results ----------------------------------------------------------------------------------------------
    @property
    def tool_calls(self) -> int:
        return self._tools.count

    @property
    def tool_names(self) -> list[str]:
        return self._tools.names

    @property
    def has_text(self) -> bool:
        """The answer has non-blank text (reasoning aside)."""
        return self.answer_at is not None or self._body_text

    def answer_kind(self, completion_tokens: int | None) -> AnswerKind:
        """What this generation answered (llmwatch.answers: the one rule)."""
        thought = self.reasoning_deltas > 0
        return answer_kind(self.has_text, self.tool_calls, thought, completion_tokens)

    def json_valid(self) -> bool | None:
        """For a JSON-format request whose answer has text: whether that text parses as JSON; else None."""
        return None if self._json is None or not self.has_text else parses(self._json)

    @property
    def generated(self) -> bool:
        """The engine sent a completion: usage, a body, or at least one streamed chunk with choices."""
        return self.usage is not None or self._chunks > 0

    def token_counts(self, streamed: bool) -> TokenCounts:
        """(prompt, completion, reasoning, total) tokens; from usage, apportioned where usage is silent."""
        if streamed:
            counted = self.reasoning_deltas + self.answer_deltas if self._chunks else None
            return token_counts(self.usage, counted, self.reasoning_deltas, self.answer_deltas)
        # Non-streamed bodies always keep their texts (on_response).
        said = sum(map(len, self.answer_text)) + self._tool_chars
        return token_counts(self.usage, None, sum(map(len, self.reasoning_text)), said)

    def _take_timings(self, obj: dict[str, Any]) -> None:
        timings = obj.get("timings")
        if isinstance(timings, dict):
            self.timings = timings

    def engine_per_token_seconds(self) -> tuple[float | None, float | None]:
        """(prompt, predicted) seconds per token as llama.cpp measured them (its `timings`), else None."""
        return per_token_seconds(self.timings)
