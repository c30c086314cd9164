"""The SSE scanner: same accounting for any split of the bytes; usage chunk stripped only when asked."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmwatch.gateway.accounting import CompletionAccounting
from llmwatch.gateway.sse import EventTooLarge, SSEScanner
from tests.support.vllm_chunks import r1_stream

pytestmark = pytest.mark.unit

STREAM = r1_stream(["Let", " me", " think", "你好"], ["The", " answer", " is 4."])


def _scan(data: bytes, cuts: list[int], strip: bool) -> tuple[bytes, CompletionAccounting, SSEScanner]:
    acct = CompletionAccounting(keep_text=True)
    scanner = SSEScanner(acct.on_chunk, strip)
    out = []
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(data))), len(data)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        out.append(scanner.feed(data[a:b], float(i)))
    out.append(scanner.flush(float(len(bounds))))
    return b"".join(out), acct, scanner


def _summary(acct: CompletionAccounting) -> tuple[object, ...]:
    acct.finish()
    return (acct.token_counts(True), acct.finish_reason, "".join(acct.reasoning_text), "".join(acct.answer_text),
            acct.reasoning_deltas, acct.answer_deltas)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40), strip=st.booleans())
def test_any_split_gives_the_same_accounting(cuts: list[int], strip: bool) -> None:
    whole_out, whole, _ = _scan(STREAM, [], strip)
    split_out, split, scanner = _scan(STREAM, cuts, strip)
    assert _summary(split) == _summary(whole)
    assert split_out == whole_out
    assert scanner.done


@pytest.mark.parametrize("strip", [False, True])
def test_one_event_per_chunk_takes_the_short_path_with_the_same_result(strip: bool) -> None:
    boundaries = [i + 2 for i in range(len(STREAM)) if STREAM[i : i + 2] == b"\n\n"]
    aligned_out, aligned, _ = _scan(STREAM, boundaries, strip)
    whole_out, whole, _ = _scan(STREAM, [], strip)
    assert _summary(aligned) == _summary(whole)
    assert aligned_out == whole_out


def test_pass_through_forwards_every_byte_unchanged() -> None:
    out, acct, _ = _scan(STREAM, [7, 100, 101, 333], strip=False)
    assert out == STREAM
    assert acct.token_counts(True) == (11, 8, 5, 19)  # round(8 * 4/7): the silent </think> token is apportioned too


def test_strip_mode_removes_only_the_usage_chunk() -> None:
    out, acct, _ = _scan(STREAM, [50, 51, 52], strip=True)
    events = [e for e in out.split(b"\n\n") if e]
    payloads = [e.removeprefix(b"data: ") for e in events]
    assert payloads[-1] == b"[DONE]"
    parsed = [orjson.loads(p) for p in payloads[:-1]]
    assert all(p["choices"] for p in parsed), "a usage-only chunk reached the client"
    assert len(parsed) == 1 + 4 + 3 + 1
    assert acct.usage is not None and acct.usage["completion_tokens"] == 8


def test_crlf_line_endings_and_comments_are_tolerated() -> None:
    data = STREAM.replace(b"\n", b"\r\n")
    data = b": keep-alive\r\n\r\n" + data
    out, acct, scanner = _scan(data, [3, 90], strip=False)
    assert out == data
    assert scanner.done
    assert _summary(acct)[0] == (11, 8, 5, 19)


def test_malformed_event_is_forwarded_and_the_rest_still_counted() -> None:
    data = b"data: {not json}\n\n" + STREAM
    out, acct, scanner = _scan(data, [], strip=True)
    assert out.startswith(b"data: {not json}\n\n")
    assert scanner.done and _summary(acct)[0] == (11, 8, 5, 19)


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=7000), max_size=20), strip=st.booleans(),
       data_lines=st.booleans())  # fmt: skip
def test_a_line_past_the_limit_is_refused_however_it_is_split(cuts: list[int], strip: bool, data_lines: bool) -> None:
    """An endless line (or an event of endless data lines) costs at most the limit, then EventTooLarge."""
    big = (b"data: " + b"x" * 20 + b"\n") * 300 if data_lines else b"data: {" + b"x" * 4800 + b"}\n"
    acct = CompletionAccounting()
    scanner = SSEScanner(acct.on_chunk, strip, max_line=1024)
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(big))), len(big)]
    with pytest.raises(EventTooLarge):
        for a, b in itertools.pairwise(bounds):
            scanner.feed(big[a:b], 0.0)
    # Within the limit, the same bytes scan fine.
    SSEScanner(acct.on_chunk, strip, max_line=1 << 20).feed(big, 0.0)


def test_a_chunk_the_accounting_cannot_read_is_forwarded_and_counted() -> None:
    acct = CompletionAccounting()
    scanner = SSEScanner(acct.on_chunk, False)
    odd = b'data: {"choices": [1, 2]}\n\ndata: {"choices": [{"delta": {"content": 5}}]}\n\n'
    assert scanner.feed(odd, 0.0) == odd
    assert scanner.malformed == 2


def test_a_comment_line_held_in_strip_mode_stays_with_its_event() -> None:
    """A line that is not data (`: ping`) held until its event ends must go out with that event, even when the
    event's data line then arrives alone in one chunk (the one-event fast path)."""
    stream = b": ping\n" + STREAM
    for strip in (True, False):
        whole_out, _, _ = _scan(stream, [], strip)
        split_out, _, _ = _scan(stream, [len(b": ping\n"), len(b": ping\n") + STREAM.index(b"\n\n") + 2], strip)
        assert split_out == whole_out, strip


def test_an_event_left_unterminated_at_the_end_is_timed_when_it_is_flushed() -> None:
    acct = CompletionAccounting()
    scanner = SSEScanner(acct.on_chunk, strip_usage=False)
    first = r1_stream([], ["Hi"]).split(b"\n\n")
    scanner.feed(first[0] + b"\n\n", 1.0)  # the role chunk
    scanner.feed(first[1] + b"\n", 2.0)  # the first token, its blank line never comes
    scanner.flush(5.0)
    assert acct.first_token_at == 5.0
