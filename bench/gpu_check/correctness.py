"""Correctness through the official openai SDK: usage, TTFT, the reasoning split, the error types."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.gpu_check.record import Record
from llmwatch.processes import wait_until

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam


def access_line(log: Path, request_id: str) -> dict[str, Any]:
    """The gateway's access-log line of ``request_id`` (a background thread writes it)."""

    def find() -> dict[str, Any] | None:
        for line in reversed(log.read_text().splitlines() if log.exists() else []):
            entry: dict[str, Any] = json.loads(line)
            if entry.get("request_id") == request_id:
                return entry
        return None

    return wait_until(find, 30, f"the access-log line of {request_id}", interval=0.1)


def correctness(
    rec: Record, gateway: str, engine: str, key: str, log: Path, model: str, max_len: int, kind: str
) -> None:
    """usage equals the engine's, TTFT, the reasoning split, empty answers, the error types, streamed and not."""
    import openai

    gw = openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0, timeout=120)
    direct = openai.OpenAI(base_url=engine + "/v1", api_key="none", max_retries=0, timeout=120)
    ask: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Explain in three sentences why batching makes GPU inference faster."}
    ]
    fixed = {"ignore_eos": True}
    n = 32

    def rid() -> str:
        return uuid.uuid4().hex

    # Not streamed: usage through the gateway = the engine's own; the log line carries the same numbers.
    r1 = rid()
    via = gw.chat.completions.create(model=model, messages=ask, max_tokens=n, extra_body=fixed,
                                     extra_headers={"X-Request-Id": r1})  # fmt: skip
    own = direct.chat.completions.create(model=model, messages=ask, max_tokens=n, extra_body=fixed)
    line = access_line(log, r1)
    u, d = via.usage, own.usage
    assert u is not None and d is not None
    rec.check(
        "usage, not streamed",
        u.prompt_tokens == d.prompt_tokens and u.completion_tokens == d.completion_tokens == n
        and line["prompt_tokens"] == u.prompt_tokens and line["completion_tokens"] == u.completion_tokens,
        f"gateway {u.prompt_tokens}+{u.completion_tokens}, engine {d.prompt_tokens}+{d.completion_tokens}, "
        f"log {line['prompt_tokens']}+{line['completion_tokens']}",
    )  # fmt: skip
    msg = via.choices[0].message
    extra = msg.model_extra or {}
    reasoning = extra.get("reasoning") or extra.get("reasoning_content") or ""
    rec.check(
        "reasoning split, not streamed",
        bool(reasoning) and line["reasoning_tokens"] + line["answer_tokens"] == line["completion_tokens"],
        f"reasoning {len(reasoning)} chars, answer {len(msg.content or '')} chars; log reasoning_tokens "
        f"{line['reasoning_tokens']}, answer_tokens {line['answer_tokens']}, empty_response {line['empty_response']}, "
        f"finish_reason {line['finish_reason']}; completion_tokens_details from the engine: "
        f"{(d.model_extra or {}).get('completion_tokens_details', d.completion_tokens_details)}",
    )
    rec.data["facts"]["reasoning_only"] = not (msg.content or "").strip()

    # Streamed: TTFT, the usage chunk, reasoning deltas.
    r2 = rid()
    sent = time.perf_counter()
    first: float | None = None
    usage = None
    reasoning_chars = answer_chars = 0
    stream = gw.chat.completions.create(
        model=model, messages=ask, max_tokens=n, stream=True, stream_options={"include_usage": True},
        extra_body=fixed, extra_headers={"X-Request-Id": r2},
    )  # fmt: skip
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            dx = choice.delta.model_extra or {}
            text = dx.get("reasoning") or dx.get("reasoning_content") or ""
            if (text or choice.delta.content) and first is None:
                first = time.perf_counter()
            reasoning_chars += len(text)
            answer_chars += len(choice.delta.content or "")
    line = access_line(log, r2)
    rec.check(
        "usage and TTFT, streamed",
        usage is not None and usage.completion_tokens == n and first is not None and line["ttft_ms"] is not None
        and line["completion_tokens"] == n and line["stream"] is True,
        f"client TTFT {None if first is None else round(1000 * (first - sent))} ms, gateway ttft_ms "
        f"{line['ttft_ms']}, usage {None if usage is None else usage.completion_tokens}, "
        f"log {line['completion_tokens']}",
    )  # fmt: skip
    rec.check(
        "reasoning split, streamed",
        reasoning_chars > 0 and line["reasoning_tokens"] + line["answer_tokens"] == n,
        f"reasoning {reasoning_chars} chars, answer {answer_chars} chars; log reasoning_tokens "
        f"{line['reasoning_tokens']}, answer_tokens {line['answer_tokens']}, empty_response {line['empty_response']}",
    )
    rec.data["facts"]["reasoning_only"] = rec.data["facts"]["reasoning_only"] and answer_chars == 0
    rec.data["facts"]["empty_response_of_reasoning_only"] = line["empty_response"]

    # Errors: a prompt over the context (400 context_length) and an unknown model (404 model_not_found).
    too_long: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello " * (max_len + 100)}]
    cases = [("context_length", 400, model, too_long), ("model_not_found", 404, "no-such-model", ask)]
    if kind == "llamacpp":  # llama-server serves its one model whatever name a request gives
        cases = cases[:1]
        rec.data["facts"]["not_checked"] = "model_not_found: llama-server answers every model name with its one model"
    for error_type, status, name, messages in cases:
        for streamed in (False, True):
            r = rid()
            got: int | None = None
            try:
                kwargs: dict[str, Any] = {"stream": True} if streamed else {}
                result = gw.chat.completions.create(model=name, messages=messages, max_tokens=8,
                                                    extra_headers={"X-Request-Id": r}, **kwargs)  # fmt: skip
                if streamed:
                    list(result)
            except openai.APIStatusError as exc:
                got = exc.status_code
            line = access_line(log, r)
            rec.check(
                f"{error_type}, {'streamed' if streamed else 'not streamed'}",
                got == status and line["status"] == status and line["error_type"] == error_type,
                f"SDK got {got}, log status {line['status']} error_type {line['error_type']}",
            )
