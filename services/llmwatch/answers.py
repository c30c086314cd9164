"""What a generation answered, decided once for the gateway, the load test and the dashboards built on them.

An answer is content (non-blank text) or a tool call, or both. A generation that only thought (it ran out of
max_tokens inside `<think>`, or never closed it) has no answer: `reasoning_only`. One that produced nothing at all,
or whose engine counted zero completion tokens, is `empty`. Both are empty responses. The kind is a bounded value,
fit for a metric label; function names and texts are not.
"""

from __future__ import annotations

from typing import Final, Literal

AnswerKind = Literal["text", "tool_calls", "reasoning_only", "empty"]
ANSWER_KINDS: Final[tuple[AnswerKind, ...]] = ("text", "tool_calls", "reasoning_only", "empty")
NO_ANSWER: Final[frozenset[AnswerKind]] = frozenset({"reasoning_only", "empty"})


def answer_kind(has_text: bool, tool_calls: int, has_reasoning: bool, completion_tokens: int | None) -> AnswerKind:
    """The kind of one generation's answer: ``tool_calls`` (with or without text), ``text``, ``reasoning_only``
    or ``empty``. ``completion_tokens`` is the engine's count when known; 0 means nothing was generated."""
    if completion_tokens == 0:
        return "empty"
    if tool_calls > 0:
        return "tool_calls"
    if has_text:
        return "text"
    return "reasoning_only" if has_reasoning else "empty"


def is_empty(kind: AnswerKind, accept_reasoning_only: bool = False) -> bool:
    """True when ``kind`` is no answer. ``accept_reasoning_only`` lets a thought-only generation count as one (a
    load test of random weights, which never close `</think>`); the gateway never passes it."""
    if kind == "reasoning_only":
        return not accept_reasoning_only
    return kind in NO_ANSWER
