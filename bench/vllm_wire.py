"""The benchmark upstream's responses: the simulator's vLLM wire format (llmwatch.simulator.wire), pre-rendered.

Streams are rendered once per (second, model, length) with a placeholder id that the upstream splices per request,
so it spends next to no CPU per token. Half the tokens are reasoning (``delta.reasoning``), as a short R1 answer
roughly is; every completion ends by length.
"""

from __future__ import annotations

import time

import orjson

from llmwatch import openai_error
from llmwatch.simulator import wire

ID_MARK = b"@@ID@@"  # spliced with the request id; ids are unique per request, as vLLM's are
DONE = wire.DONE
_WORDS = ("Okay", ",", " let", " me", " think", " about", " this", " step", " by", " step", ".", "\n\n")


def _text(start: int, stop: int) -> str:
    return "".join(_WORDS[i % len(_WORDS)] for i in range(start, stop))


def stream_events(created: int, model: str, n_tokens: int) -> list[bytes]:
    """The SSE events of one streamed completion of ``n_tokens`` tokens, without usage chunk and [DONE]."""
    frames = wire.ChatFrames(ID_MARK.decode(), created, model, 0, continuous_usage=False)
    n_reasoning = n_tokens // 2
    events = [frames.role()]
    for i in range(n_tokens):
        field = b"reasoning" if i < n_reasoning else b"content"
        events.append(frames.token(field, _text(i, i + 1), "length" if i == n_tokens - 1 else None, i + 1))
    return events


def usage_event(rid: str, created: int, model: str, prompt_tokens: int, completion_tokens: int) -> bytes:
    return wire.ChatFrames(rid, created, model, prompt_tokens, continuous_usage=False).usage(completion_tokens)


def completion_body(rid: str, model: str, prompt_tokens: int, n_tokens: int) -> bytes:
    """A non-streamed ``chat.completion`` as vLLM dumps it."""
    n_reasoning = n_tokens // 2
    body = wire.chat_response(
        rid, int(time.time()), model, _text(n_reasoning, n_tokens), _text(0, n_reasoning) or None, "length",
        prompt_tokens, n_tokens,
    )  # fmt: skip
    return orjson.dumps(body)


def models_body(model: str) -> bytes:
    created = int(time.time())
    return orjson.dumps({"object": "list", "data": [wire.models_body(model, 32768, created, "modelperm-bench")]})


def error_body(message: str, code: int) -> bytes:
    return openai_error.error_body(message, "BadRequestError", None, code)
