"""vLLM's chat-completion wire format, pre-rendered so the benchmark upstream spends next to no CPU per request.

The shapes follow vLLM's OpenAI server: stream chunks are dumped with ``exclude_unset`` (a role chunk with empty
content first, then one chunk per token, the last with ``finish_reason`` and ``stop_reason``), the usage chunk has
``choices: []`` and comes only when ``stream_options.include_usage`` is set, then ``data: [DONE]``. Reasoning text
(DeepSeek-R1 with ``--reasoning-parser deepseek_r1``) travels in ``delta.reasoning``, the name vLLM uses since it
dropped ``reasoning_content``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
ID_MARK = b"@@ID@@"  # spliced with the request id; ids are unique per request, as vLLM's are
DONE = b"data: [DONE]\n\n"
_WORDS = ("Okay", ",", " let", " me", " think", " about", " this", " step", " by", " step", ".", "\n\n")


def token_text(i: int) -> str:
    return _WORDS[i % len(_WORDS)]


def reasoning_split(n_tokens: int) -> int:
    """How many of ``n_tokens`` are reasoning: half, as a short R1 answer roughly is."""
    return n_tokens // 2


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _chunk(created: int, model: str, choice: dict[str, Any]) -> dict[str, Any]:
    return {"id": "@@ID@@", "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice]}


def stream_events(created: int, model: str, n_tokens: int) -> list[bytes]:
    """The SSE events of one streamed completion of ``n_tokens`` tokens, without usage chunk and [DONE]."""
    n_reasoning = reasoning_split(n_tokens)
    events = [
        _event(
            _chunk(
                created,
                model,
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None},
            )
        )
    ]
    for i in range(n_tokens):
        field = "reasoning" if i < n_reasoning else "content"
        choice: dict[str, Any] = {"index": 0, "delta": {field: token_text(i)}, "logprobs": None, "finish_reason": None}
        if i == n_tokens - 1:
            choice["finish_reason"] = "length"
            choice["stop_reason"] = None
        events.append(_event(_chunk(created, model, choice)))
    return events


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    # vLLM's UsageInfo field order.
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }


def usage_event(rid: str, created: int, model: str, prompt_tokens: int, completion_tokens: int) -> bytes:
    obj = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage(prompt_tokens, completion_tokens),
    }
    return _event(obj)


def completion_body(rid: str, model: str, prompt_tokens: int, n_tokens: int) -> bytes:
    """A non-streamed ``chat.completion`` as vLLM dumps it (every field present, unset ones null)."""
    n_reasoning = reasoning_split(n_tokens)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(token_text(i) for i in range(n_reasoning, n_tokens)),
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": [],
        "reasoning": "".join(token_text(i) for i in range(n_reasoning)) or None,
    }
    body = {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "length",
                "stop_reason": None,
                "token_ids": None,
            }
        ],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": {**usage(prompt_tokens, n_tokens), "prompt_tokens_details": None},
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "kv_transfer_params": None,
    }
    return orjson.dumps(body)


def models_body(model: str) -> bytes:
    card = {
        "id": model,
        "object": "model",
        "created": int(time.time()),
        "owned_by": "vllm",
        "root": model,
        "parent": None,
        "max_model_len": 32768,
        "permission": [],
    }
    return orjson.dumps({"object": "list", "data": [card]})


def error_body(message: str, code: int) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "BadRequestError", "param": None, "code": code}})
