"""DeepSeek-R1's inline reasoning markup: `<think>...</think>` in the content, when the engine runs no reasoning
parser (vLLM without --reasoning-parser, llama.cpp without --reasoning-format)."""

from __future__ import annotations

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


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
