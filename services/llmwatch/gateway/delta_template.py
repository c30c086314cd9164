"""A stream's plain token events, recognised on the wire without parsing them.

An engine writes nearly every event of a stream with the same bytes around one string: vLLM's
`{"id":"chatcmpl-…","object":"chat.completion.chunk","created":…,"model":"…","choices":[{"index":0,"delta":
{"reasoning":"<text>"},"logprobs":null,"finish_reason":null}]}`. The template learns those bytes from an event the
scanner parsed and found plain (one choice, a delta of one non-empty text field, no finish reason, no usage, no
error), then matches the next events by their first and last bytes. What matches has the learned structure exactly:
the same bytes before the text, the same after, and between them one JSON string (no unescaped quote). So the
accounting can count it as the parsed event would be counted, with no JSON parse. Anything else (another field,
a finish reason, usage, an engine whose constant bytes vary) does not match and is parsed as before; a parse of a
plain event learns again, at most ``MAX_LEARNS`` times a stream.
"""

from __future__ import annotations

from typing import Any

# The delta fields a plain event may carry, and whether each is reasoning (accounting.py reads the same three).
FIELDS = {"reasoning": True, "reasoning_content": True, "content": False}
MAX_LEARNS = 8  # an engine whose constant bytes are not constant costs a few learns, then nothing
_DELTA = b'"delta":{"'


class DeltaTemplate:
    __slots__ = ("_learns", "_prefix", "_reasoning", "_suffix")

    def __init__(self) -> None:
        self._prefix = b""  # through the text field's opening quote
        self._suffix = b""  # from its closing quote to the end
        self._reasoning = False
        self._learns = 0

    def match(self, data: bytes) -> bool | None:
        """True (a plain reasoning event) or False (a plain answer event) when ``data`` has the learned bytes around
        one non-empty JSON string; None otherwise."""
        prefix, suffix = self._prefix, self._suffix
        if not prefix or not data.startswith(prefix) or not data.endswith(suffix):
            return None
        end = len(data) - len(suffix)
        if end <= len(prefix) or data.find(b'"', len(prefix), end) >= 0:
            return None  # empty text (not counted as a token), or a quote: not one string
        if data[end - 1] == 0x5C:  # the text ends in backslashes: an odd run would escape the closing quote
            text = data[len(prefix) : end]
            if (len(text) - len(text.rstrip(b"\\"))) % 2:
                return None
        return self._reasoning

    def learn(self, data: bytes, obj: dict[str, Any]) -> None:
        """Take the bytes around the text of ``obj`` (``data`` parsed) when it is a plain event."""
        if self._learns >= MAX_LEARNS:
            return
        field = _plain_field(obj)
        if field is None or data.count(_DELTA) != 1:
            return
        start = data.index(_DELTA) + len(_DELTA)
        if not data.startswith(field.encode() + b'":"', start):
            return
        text_start = start + len(field) + 3
        close = _closing_quote(data, text_start)
        if close is None:
            return
        self._learns += 1
        self._prefix, self._suffix, self._reasoning = data[:text_start], data[close:], FIELDS[field]


def _plain_field(obj: dict[str, Any]) -> str | None:
    """The delta's one text field when ``obj`` is a plain event, else None."""
    if obj.get("usage") is not None or obj.get("error") is not None:
        return None
    choices = obj.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    delta = choice.get("delta")
    if choice.get("finish_reason") is not None or not isinstance(delta, dict) or len(delta) != 1:
        return None
    ((field, text),) = delta.items()
    return field if field in FIELDS and isinstance(text, str) and text != "" else None


def _closing_quote(data: bytes, pos: int) -> int | None:
    """The index of the quote that ends the JSON string starting at ``pos`` (after its opening quote)."""
    while (quote := data.find(b'"', pos)) >= 0:
        run = quote
        while run > pos and data[run - 1] == 0x5C:  # backslash
            run -= 1
        if (quote - run) % 2 == 0:
            return quote
        pos = quote + 1
    return None
