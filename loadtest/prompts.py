"""The prompt set (loadtest/prompts.jsonl): one JSON object per line, with id, tags and the chat messages.

Every request uses DeepSeek's recommended settings for R1 (llmwatch.vllm.model.R1_SAMPLING, no system prompt); the
math prompts end with its directive "Please reason step by step, and put your final answer within \\boxed{}".
A prompt may also carry request fields for agents: `tools` with `tool_choice` (tag `tools`) or `response_format`
(tag `json`); they are sent as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FILE = Path(__file__).resolve().with_name("prompts.jsonl")
REQUEST_FIELDS = ("tools", "tool_choice", "response_format")  # sent with the prompt's messages when present
R1_MATH_DIRECTIVE = "Please reason step by step, and put your final answer within \\boxed{}."


class PromptError(ValueError):
    """The prompt file is unreadable or has a bad line; the message names the line."""


@dataclass(frozen=True)
class Prompt:
    id: str
    tags: frozenset[str]
    messages: list[dict[str, Any]]
    fields: dict[str, Any] = field(default_factory=dict)  # REQUEST_FIELDS the prompt sets


def load(path: Path = DEFAULT_FILE, tags: frozenset[str] = frozenset()) -> list[Prompt]:
    """Prompts of ``path`` carrying every tag in ``tags`` (all of them when empty)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptError(f"cannot read the prompt file {path}: {exc}") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            fields = {name: entry[name] for name in REQUEST_FIELDS if name in entry}
            prompt = Prompt(str(entry["id"]), frozenset(entry.get("tags", ())), list(entry["messages"]), fields)
        except (ValueError, KeyError, TypeError) as exc:
            raise PromptError(f"{path}:{number}: need a JSON object with id and messages ({exc})") from None
        if any(m.get("role") == "system" for m in prompt.messages):
            raise PromptError(f"{path}:{number}: no system prompt for R1 (DeepSeek's usage recommendation)")
        if tags <= prompt.tags:
            out.append(prompt)
    if not out:
        raise PromptError(f"{path} has no prompt tagged {sorted(tags)}")
    return out
