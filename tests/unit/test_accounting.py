"""Reasoning vs answer accounting and the empty-answer rule, streamed and not."""

from __future__ import annotations

import pytest

from llmwatch.gateway.accounting import CompletionAccounting, split_inline_think
from llmwatch.gateway.sse import SSEScanner
from tests.support.vllm_chunks import MODEL, inline_stream, r1_stream, usage

pytestmark = pytest.mark.unit


def _stream(data: bytes) -> CompletionAccounting:
    acct = CompletionAccounting(keep_text=True)
    scanner = SSEScanner(acct.on_chunk, strip_usage=False)
    for i, byte_chunk in enumerate(data.split(b"\n\n")):
        scanner.feed(byte_chunk + b"\n\n", float(i))
    acct.finish()
    return acct


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_field_and_its_older_name(field: str) -> None:
    acct = _stream(r1_stream(["a", "b", "c"], ["x"], field=field))
    prompt, completion, reasoning, total = acct.token_counts(True)
    assert (prompt, completion, total) == (11, 5, 16)
    assert reasoning == 4  # 3 of 4 deltas were reasoning: round(5 * 3/4)
    assert "".join(acct.reasoning_text) == "abc"
    assert acct.has_text


def test_usage_reasoning_tokens_win_over_apportioning() -> None:
    acct = CompletionAccounting()
    acct.on_chunk({"choices": [{"index": 0, "delta": {"reasoning": "hmm"}, "finish_reason": None}]}, 1.0)
    acct.on_chunk({"choices": [], "usage": usage(3, 10, reasoning=7)}, 2.0)
    assert acct.token_counts(True) == (3, 10, 7, 13)


def test_cut_off_while_thinking_is_an_empty_answer() -> None:
    acct = _stream(r1_stream(["think", "ing", "..."], [], finish="length"))
    assert acct.finish_reason == "length"
    assert not acct.has_text
    assert acct.answer_at is None
    _, completion, reasoning, _ = acct.token_counts(True)
    assert completion == reasoning == 4


def test_inline_think_is_split_at_the_closing_tag() -> None:
    acct = _stream(inline_stream(["<think>", "\nmaybe", " 4", "</think>", "\n\n", "It is", " 4."]))
    assert acct.reasoning_deltas == 4
    assert acct.answer_deltas == 3
    assert "".join(acct.answer_text) == "\n\nIt is 4."
    assert acct.answer_at == 6.0  # the first non-blank answer delta, not the blank "\n\n"
    assert acct.first_token_at == 1.0


def test_inline_closing_tag_split_across_deltas() -> None:
    acct = _stream(inline_stream(["thinking", "</thi", "nk>Answer"]))
    assert "".join(acct.answer_text) == "Answer"
    assert acct.reasoning_deltas == 3  # "thinking", "</thi" and the delta that completed the tag
    assert acct.has_text


def test_inline_cut_off_inside_think_is_empty_and_plain_text_is_answer() -> None:
    cut = _stream(inline_stream(["<think>", "still", " going"], finish="length"))
    assert not cut.has_text and cut.reasoning_deltas == 3 and cut.answer_deltas == 0
    plain = _stream(inline_stream(["Just", " an", " answer"]))
    assert plain.has_text and plain.reasoning_deltas == 0 and plain.answer_deltas == 3
    assert plain.token_counts(True)[2] == 0


def _message(content: str | None, **extra: str) -> dict[str, object]:
    return {"id": "x", "object": "chat.completion", "model": MODEL, "usage": usage(9, 20),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content, **extra}}]}  # fmt: skip


def test_non_streamed_reasoning_is_apportioned_by_characters() -> None:
    acct = CompletionAccounting()
    acct.on_response(_message("abcd" * 1, reasoning="r" * 12))
    assert acct.token_counts(False) == (9, 20, 15, 29)  # 12 of 16 characters
    assert acct.has_text


def test_non_streamed_null_content_is_empty() -> None:
    acct = CompletionAccounting()
    acct.on_response(_message(None, reasoning="I was still thinking when"))
    assert not acct.has_text
    assert acct.token_counts(False)[2] == 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think>b", ("a", "b")),
        ("a</think>b", ("a", "b")),
        ("<think>never closed", ("never closed", "")),
        ("no tags", ("", "no tags")),
    ],
)
def test_split_inline_think(text: str, expected: tuple[str, str]) -> None:
    assert split_inline_think(text) == expected


def test_streamed_tool_calls_are_answers_counted_and_named() -> None:
    from tests.support.vllm_chunks import tool_stream

    names = ["x" * 100] + [f"f{i}" for i in range(10)]
    acct = _stream(tool_stream(["think"], [(name, ["{}"]) for name in names]))
    assert acct.tool_calls == 11 and acct.first_token_at == 1.0 and acct.answer_at == 2.0
    assert len(acct.tool_names) == 8 and acct.tool_names[0] == "x" * 64  # capped: 8 names of 64 characters
    assert acct.answer_kind(acct.token_counts(True)[1]) == "tool_calls"


def test_non_streamed_tool_calls_and_json_validity() -> None:
    from tests.support.vllm_chunks import tool_message

    acct = CompletionAccounting(check_json=True)
    acct.on_response(tool_message([("get_weather", '{"city": "Paris"}')], reasoning="r" * 10))
    assert (acct.tool_calls, acct.tool_names, acct.answer_kind(20)) == (1, ["get_weather"], "tool_calls")
    assert acct.json_valid() is None  # no answer text to judge
    prose = CompletionAccounting(check_json=True)
    prose.on_response(_message("Sure! Here it is: {"))
    assert prose.json_valid() is False
    streamed = _stream_json(['{"a":', " 1}"])
    assert streamed.json_valid() is True
    assert CompletionAccounting().json_valid() is None  # no JSON format asked


def _stream_json(pieces: list[str]) -> CompletionAccounting:
    acct = CompletionAccounting(check_json=True)
    scanner = SSEScanner(acct.on_chunk, strip_usage=False)
    scanner.feed(r1_stream(["hm"], pieces), 1.0)
    acct.finish()
    return acct


def test_refused_stream_has_no_token_counts() -> None:
    acct = CompletionAccounting()
    acct.finish()
    assert acct.token_counts(True) == (None, None, None, None) and not acct.generated
