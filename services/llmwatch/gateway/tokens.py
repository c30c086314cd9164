"""A completion's token counts: the engine's `usage` where it gave them (usage.py checked them); where it did not,
what streamed, and the reasoning share apportioned: by delta count when streamed (vLLM sends about one token per
delta), by character count otherwise."""

from __future__ import annotations

from typing import Any

TokenCounts = tuple[int | None, int | None, int | None, int | None]  # prompt, completion, reasoning, total


def token_counts(usage: dict[str, Any] | None, streamed: int | None, thought: int, said: int) -> TokenCounts:
    """``streamed``: the deltas that streamed, None when nothing did (non-streamed, or refused); ``thought`` and
    ``said``: the reasoning and answer shares (deltas or characters) that apportion reasoning tokens."""
    usage = usage or {}  # already checked (usage.checked_usage): only valid counts are in it
    prompt: int | None = usage.get("prompt_tokens")
    completion: int | None = usage.get("completion_tokens")
    if completion is None:
        completion = streamed  # no usage: count what streamed; nothing streamed stays null
    total: int | None = usage.get("total_tokens")
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    reasoning: int | None = usage.get("completion_tokens_details", {}).get("reasoning_tokens")
    if reasoning is None and completion is not None:
        reasoning = apportion(completion, thought, said)
    return prompt, completion, reasoning, total


def apportion(completion: int, thought: int, said: int) -> int:
    """The reasoning tokens among ``completion``, in proportion to the shares; an answer is at least one token."""
    if not thought:
        return 0
    if not said:
        return completion
    return max(0, min(completion - 1, round(completion * thought / (thought + said))))
