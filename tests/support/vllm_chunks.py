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


# Tool calls, as vLLM streams them (vllm/entrypoints/openai/chat_completion/serving.py,
# chat_completion_stream_generator, vLLM main after 0.33; DeltaToolCall in vllm/entrypoints/openai/engine/protocol.py;
# the first delta's shape in vllm/tool_parsers/*_tool_parser.py, e.g. hermes and deepseekv3). The first delta of a
# call carries id, type, index and the function's name (`DeltaFunctionCall(name=...).model_dump(exclude_none=True)`),
# later ones only the index and an `arguments` fragment; a delta the parser holds back is not sent; the finishing
# chunk has an empty delta and finish_reason "tool_calls" (auto and required) or "stop" (a named tool_choice).
TOOL_ID = "chatcmpl-tool-0123456789abcdef0123456789abcdef"


def tool_call_deltas(index: int, name: str, argument_pieces: list[str]) -> list[dict[str, Any]]:
    first = {"id": f"{TOOL_ID[:-1]}{index}", "type": "function", "index": index, "function": {"name": name}}
    rest = [{"index": index, "function": {"arguments": piece}} for piece in argument_pieces]
    return [{"tool_calls": [call]} for call in (first, *rest)]


def tool_stream(reasoning: list[str], calls: list[tuple[str, list[str]]], content: list[str] | None = None,
                finish: str = "tool_calls", completion: int | None = None) -> bytes:  # fmt: skip
    """Role chunk, reasoning deltas, optional content, each call's deltas, an empty finishing delta, usage, [DONE]."""
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"reasoning": piece}) for piece in reasoning]
    events += [chunk({"content": piece}) for piece in content or []]
    deltas = [d for index, (name, pieces) in enumerate(calls) for d in tool_call_deltas(index, name, pieces)]
    events += [chunk(delta) for delta in deltas]
    events.append(chunk({}, finish))
    count = completion if completion is not None else len(reasoning) + len(content or []) + len(deltas) + 1
    events.append(chunk(None, usage=usage(11, count)))
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def tool_message(calls: list[tuple[str, str]], content: str | None = None, reasoning: str | None = None,
                 finish: str = "tool_calls", completion: int = 20) -> dict[str, Any]:  # fmt: skip
    """A non-streamed chat.completion whose message carries `tool_calls` (ToolCall: id, type, function)."""
    tool_calls = [{"id": f"{TOOL_ID[:-1]}{i}", "type": "function", "function": {"name": name, "arguments": args}}
                  for i, (name, args) in enumerate(calls)]  # fmt: skip
    message = {"role": "assistant", "content": content, "refusal": None, "annotations": None, "audio": None,
               "function_call": None, "tool_calls": tool_calls, "reasoning": reasoning}  # fmt: skip
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish,
                         "stop_reason": None, "token_ids": None}],
            "usage": usage(11, completion)}  # fmt: skip
