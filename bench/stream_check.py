"""The load generator's verdict on a streamed answer (bench/loadgen.py): a byte scan of the SSE body, with JSON
parsed only for the role, first-token and usage chunks, and the tallies of completed requests.

A stream counts as complete only if it ends with `data: [DONE]`, carries the usage chunk, and has exactly the
expected number of token chunks (empty deltas do not count); TTFT is taken at the first event with text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    tokens: int = 0
    events: int = 0  # SSE events (data: lines) of the completed streams
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def fail(self, why: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5 and why not in self.error_samples:
            self.error_samples.append(why)


def _token_deltas(obj: dict[str, Any]) -> int:
    n = 0
    for choice in obj.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning") or delta.get("reasoning_content"):
            n += 1
    return n


_DATA = b"data: "
_DONE = b"data: [DONE]"
_DELTA = b'"delta":{'
# A delta whose first key is one of these, with a string value, is a token chunk when the string is not empty.
_TEXT_KEYS = (b'"content":"', b'"reasoning":"', b'"reasoning_content":"')


def _text_value(data: bytes, at: int) -> int:
    """Where the string value starts if a text key starts at ``at``, else 0."""
    for key in _TEXT_KEYS:
        if data.startswith(key, at):
            return at + len(key)
    return 0


class StreamCheck:
    """Checks one streamed answer as its bytes arrive, without parsing every event as JSON.

    The common event, ``data: {...,"delta":{"content":"x"},...}`` on one line with one delta, is classified by a
    byte scan: a token chunk if its first delta key is content, reasoning or reasoning_content with a non-empty
    string. Everything else (the role chunk, the usage chunk, errors, multi-line events, several choices) is parsed
    as JSON, and so is the first token chunk, to check the scan against the parser once per stream. The verdict is
    the full one: ``max_tokens`` token chunks, a usage chunk and ``data: [DONE]``, else the stream is broken.
    """

    __slots__ = ("buf", "done", "events", "expected", "t0", "tokens", "ttft", "usage")

    def __init__(self, expected: int, t0: float) -> None:
        self.expected, self.t0 = expected, t0
        self.buf = b""
        self.tokens = self.events = 0
        self.ttft: float | None = None
        self.done = self.usage = False

    def feed(self, chunk: bytes) -> str | None:
        """Take the next bytes of the body; returns why the stream is broken as soon as that is known."""
        data = self.buf + chunk if self.buf else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        pos = 0
        while (end := data.find(b"\n\n", pos)) >= 0:
            start, pos = pos, end + 2
            if data.startswith(_DATA, start) and data.find(b"\n", start, end) < 0:
                if data.startswith(_DONE, start) and end - start == len(_DONE):
                    self.events += 1
                    self.done = True
                    continue
                d = data.find(_DELTA, start, end) + len(_DELTA)
                if d >= len(_DELTA) and data.find(_DELTA, d, end) < 0:
                    v = _text_value(data, d)
                    if v:
                        token = data[v] != 0x22  # a non-empty string: no closing `"` right away
                        if self.ttft is not None:
                            self.events += 1
                            self.tokens += token
                            continue
                        tokens = self.tokens  # the first token chunk: parse it too, to check the scan once
                        why = self._parse(data[start:end]) or (
                            None if self.tokens - tokens == token else f"scan misread {data[start:end][:200]!r}"
                        )
                        if why is not None:
                            return why
                        continue
            why = self._parse(data[start:end])
            if why is not None:
                return why
        self.buf = data[pos:]
        return None

    def _parse(self, event: bytes) -> str | None:
        """The slow path: every ``data:`` line of one event, parsed."""
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            self.events += 1
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                continue
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return f"event is not JSON: {payload[:200]!r}"
            if not isinstance(obj, dict):
                return f"event is not a JSON object: {payload[:200]!r}"
            if "error" in obj:
                return f"error event: {payload[:200]!r}"
            n = _token_deltas(obj)
            if n and self.ttft is None:
                self.ttft = time.perf_counter() - self.t0
            self.tokens += n
            self.usage = self.usage or bool(obj.get("usage"))
        return None

    def finish(self) -> str | None:
        """The verdict once the body ended: None if the stream is complete."""
        if not self.done:
            return "stream ended without data: [DONE]"
        if self.tokens != self.expected:
            return f"streamed {self.tokens} token chunks, expected {self.expected}"
        if not self.usage:
            return "no usage chunk although stream_options.include_usage was set"
        return None


def completed(check: StreamCheck, tally: Tally) -> str | None:
    """The body ended: the verdict, and the stream's TTFT, tokens and events tallied if it is complete."""
    why = check.finish()
    if why is not None:
        return why
    assert check.ttft is not None
    tally.ttfts.append(check.ttft)
    tally.tokens += check.tokens
    tally.events += check.events
    return None
