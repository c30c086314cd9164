"""What the run's answers were, per kind (llmwatch.answers), and the one line a report owes when thinking was all."""

from __future__ import annotations

from typing import Any

from llmwatch.answers import ANSWER_KINDS
from loadtest.stream import Sample


def counts(measured: list[Sample]) -> dict[str, int]:
    """Completed requests per answer kind (text, tool_calls, reasoning_only, empty)."""
    out: dict[str, int] = dict.fromkeys(ANSWER_KINDS, 0)
    for sample in measured:
        if sample.ok and sample.answer_kind in out:
            out[sample.answer_kind] += 1
    return out


def summary_line(kinds: dict[str, int]) -> str:
    """Counts per kind in one line: 12 text, 3 tool calls, 0 reasoning only, 1 empty."""
    return ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in kinds.items())


def note(kinds: dict[str, Any], accepted: bool) -> str:
    """One plain line when answers were reasoning-only, saying whether this run accepted them; "" otherwise."""
    thought = kinds["reasoning_only"]
    done = sum(kinds.values())
    if not thought:
        return ""
    share = "Every answer" if thought == done else f"{thought} of {done} answers"
    if accepted:
        return (
            f"{share} {'was' if thought == 1 or thought == done else 'were'} reasoning-only (no text after the "
            "thinking), counted as answers because --accept-reasoning-only was given: a model with random weights "
            "never closes </think>."
        )
    if thought == done:
        return (
            f"Every answer ({done}) was reasoning-only: the engine answered, but the model never finished thinking "
            "(max_tokens reached inside <think>, or weights that never close </think>), so each counts as empty. "
            "Raise --max-tokens; for a random-weights check pass --accept-reasoning-only."
        )
    return ""
