"""vLLM 0.33 wire shapes for tests that feed the gateway's parsers directly (no process needed)."""

from __future__ import annotations

from typing import Any

import orjson

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL, "choices": choices,
            **extra}  # fmt: skip


def usage(prompt: int, completion: int, reasoning: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}  # fmt: skip
    if reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def r1_stream(reasoning: list[str], answer: list[str], finish: str = "stop", field: str = "reasoning",
              with_usage: bool = True) -> bytes:  # fmt: skip
    """A reasoning-parser stream: role chunk, reasoning deltas, answer deltas, finish, usage, [DONE]."""
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({field: piece}) for piece in reasoning]
    events += [chunk({"content": piece}) for piece in answer]
    events.append(chunk({}, finish))
    if with_usage:
        events.append(chunk(None, usage=usage(11, len(reasoning) + len(answer) + 1)))
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def inline_stream(pieces: list[str], finish: str = "stop") -> bytes:
    """No reasoning parser: everything is content, with inline <think> markup."""
    events = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": p}) for p in pieces]
    events.append(chunk({}, finish))
    events.append(chunk(None, usage=usage(5, len(pieces))))
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
