"""Plain token events counted from their bytes (gateway/delta_template.py, sse.py, accounting.py on_plain_delta):
the accounting ends exactly as if every event had been parsed, whatever the engine sends, and the bytes forwarded
are the same."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from llmwatch.gateway.accounting import CompletionAccounting
from llmwatch.gateway.delta_template import DeltaTemplate
from llmwatch.gateway.sse import SSEScanner

pytestmark = pytest.mark.unit

TEXTS = ["Okay", " let", "\n\n", ' say "hi"', "back\\", "two\\\\", "é€😀", "</think>", "<think>", " ", 'x\\"y']


def _chunk(rng: random.Random, rid: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {"id": rid, "object": "chat.completion.chunk", "created": 1765000000, "model": "m", "choices": [choice]}


def _stream(rng: random.Random) -> list[bytes]:
    """A random engine: vLLM-like plain events, field switches, tools, odd texts, usage, errors, malformed JSON."""
    rid = f"chatcmpl-{rng.randrange(10**6)}"
    events: list[Any] = [_chunk(rng, rid, {"role": "assistant", "content": ""})]
    field = rng.choice(["reasoning", "reasoning_content", "content"])
    for _ in range(rng.randrange(1, 60)):
        r = rng.random()
        if r < 0.08:
            field = rng.choice(["reasoning", "reasoning_content", "content"])
        if r < 0.03:
            events.append(_chunk(rng, rid, {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{"}}]}))
        elif r < 0.05:
            events.append(_chunk(rng, rid, {field: rng.choice(TEXTS), "content": "also"}))
        elif r < 0.06:
            events.append(_chunk(rng, f"other-{rng.randrange(9)}", {field: rng.choice(TEXTS)}))  # the id varies
        elif r < 0.07:
            events.append(b'{"choices": [{"delta": {"content": "spaced json"}}]}')
        elif r < 0.08:
            events.append(_chunk(rng, rid, {field: ""}))
        elif r < 0.09:
            events.append(b"not json")
        else:
            events.append(_chunk(rng, rid, {field: rng.choice(TEXTS)}))
    events.append(_chunk(rng, rid, {field: "end"}, rng.choice(["length", "stop", "bogus"])))
    if rng.random() < 0.8:
        events.append({"id": rid, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 40,
                                                           "total_tokens": 43}})  # fmt: skip
    return [b"data: " + (e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n\n" for e in events] + [
        b"data: [DONE]\n\n"
    ]


def _run(events: list[bytes], quick: bool, keep_text: bool, check_json: bool) -> tuple[dict[str, Any], bytes]:
    acct = CompletionAccounting(keep_text, check_json)
    scanner = SSEScanner(acct.on_chunk, False, 1 << 20, acct.on_plain_delta if quick else None)
    out = b"".join(scanner.feed(e, float(i)) for i, e in enumerate(events)) + scanner.flush(float(len(events)))
    acct.finish()
    state = {
        k: getattr(acct, k)
        for k in ("reasoning_deltas", "answer_deltas", "first_token_at", "answer_at", "finish_reason", "usage",
                  "stream_error", "anomalies", "inline_done", "reasoning_text", "answer_text", "tool_calls")
    }  # fmt: skip
    state |= {"tokens": acct.token_counts(True), "kind": acct.answer_kind(40), "json": acct.json_valid(),
              "malformed": scanner.malformed, "generated": acct.generated}  # fmt: skip
    return state, out


@pytest.mark.parametrize("seed", range(300))
def test_counting_from_bytes_ends_as_parsing_every_event(seed: int) -> None:
    rng = random.Random(seed)
    events = _stream(rng)
    keep_text, check_json = rng.random() < 0.2, rng.random() < 0.2
    assert _run(events, True, keep_text, check_json) == _run(events, False, keep_text, check_json)


def test_a_vllm_stream_is_counted_from_bytes_after_its_first_events() -> None:
    rid = "chatcmpl-1"
    raw = [orjson.dumps(_chunk(random.Random(0), rid, {"reasoning": t})) for t in ["a", "b\\n", "c", "d"]]
    template = DeltaTemplate()
    assert template.match(raw[1]) is None  # nothing learned yet
    template.learn(raw[0], orjson.loads(raw[0]))
    assert [template.match(r) for r in raw[1:]] == [True, True, True]
    answer = orjson.dumps(_chunk(random.Random(0), rid, {"content": "x"}))
    assert template.match(answer) is None  # another field: parsed (and learned) again
    template.learn(answer, orjson.loads(answer))
    assert template.match(answer) is False


@pytest.mark.parametrize(
    "text",
    ['say "hi"', "ends in one backslash\\", ""],
)
def test_what_is_not_one_plain_string_is_parsed(text: str) -> None:
    template = DeltaTemplate()
    first = orjson.dumps(_chunk(random.Random(0), "c", {"reasoning": "a"}))
    template.learn(first, orjson.loads(first))
    prefix, suffix = first.split(b'"a"')
    raw = prefix + b'"' + text.encode() + b'"' + suffix  # raw bytes: the quote or backslash unescaped
    assert template.match(raw) is None


def test_the_scanner_counts_a_vllm_stream_from_bytes() -> None:
    acct = CompletionAccounting()
    taken: list[bool] = []

    def on_plain(reasoning: bool) -> bool:
        taken.append(acct.on_plain_delta(reasoning))
        return taken[-1]

    scanner = SSEScanner(acct.on_chunk, False, 1 << 20, on_plain)
    rng = random.Random(1)
    events = [_chunk(rng, "c", {"reasoning": f"r{i}"}) for i in range(50)]
    events += [_chunk(rng, "c", {"content": f"a{i}"}) for i in range(50)]
    for i, event in enumerate(events):
        scanner.feed(b"data: " + orjson.dumps(event) + b"\n\n", float(i))
    assert (acct.reasoning_deltas, acct.answer_deltas) == (50, 50)
    assert (acct.first_token_at, acct.answer_at) == (0.0, 50.0)
    assert taken.count(True) == 98  # all but the first event of each field, which is parsed and learned
