"""One streamed chat completion: its request body, and reading its SSE stream into the scanner."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from llmwatch.gateway.sse import SSEScanner
from llmwatch.vllm.model import R1_SAMPLING
from loadtest import prompts

PATH = "/v1/chat/completions"


def request_body(model: str, prompt: prompts.Prompt, max_tokens: int) -> bytes:
    """The JSON body: streamed with a usage chunk, R1's sampling, the prompt's own fields; max_tokens when > 0."""
    body: dict[str, Any] = {
        "model": model, "messages": prompt.messages, "stream": True,
        "stream_options": {"include_usage": True}, **R1_SAMPLING, **prompt.fields,
    }  # fmt: skip
    if max_tokens > 0:
        body["max_tokens"] = max_tokens
    return orjson.dumps(body)


def read_stream(readline: Callable[[bytes], bytes], scanner: SSEScanner) -> str | None:
    """Feed a 200 answer's events to ``scanner`` as they arrive; the error, or None when it ended with [DONE]."""
    try:
        while event := readline(b"\n\n"):
            scanner.feed(event, time.perf_counter())
        scanner.flush(time.perf_counter())
    except Exception as exc:  # the connection broke mid-stream: a failed request, not a crash
        return f"stream broken: {exc!r}"
    return None if scanner.done else "stream ended without [DONE]"
