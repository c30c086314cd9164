"""Incremental SSE scanning on bytes: events are found however the upstream splits them, never re-serialised.

In pass-through mode the caller forwards every chunk as it came; the scanner only reads it. In strip mode (the
gateway added `stream_options.include_usage` for its own accounting) complete events are forwarded as soon as
their blank line arrives, minus the usage-only event the client did not ask for.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from llmwatch.gateway.delta_template import DeltaTemplate

DONE = b"[DONE]"
DEFAULT_MAX_LINE = 1024 * 1024


class EventTooLarge(Exception):
    """An SSE line (or an event's held bytes) grew past the scanner's limit: the engine is misbehaving."""


# Called with each event's parsed JSON object; returns True when the event is usage-only.
OnChunk = Callable[[dict[str, object], float], bool]
# Called for an event the stream's DeltaTemplate recognised (True: reasoning); False: it wants the parsed event.
OnPlain = Callable[[bool], bool]


def _parse_all(reasoning: bool) -> bool:
    return False


class SSEScanner:
    # fmt: off
    __slots__ = ("_buf", "_data", "_data_bytes", "_hold", "_max_line", "_on_chunk", "_on_done", "_on_plain", "_strip",
                 "_template", "done", "malformed")
    # fmt: on

    def __init__(
        self,
        on_chunk: OnChunk,
        strip_usage: bool,
        max_line: int = DEFAULT_MAX_LINE,
        on_plain: OnPlain | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self._on_chunk = on_chunk
        # With on_plain, plain token events are counted from their bytes (delta_template.py).
        self._on_plain = on_plain or _parse_all
        self._template = DeltaTemplate() if on_plain is not None else None
        self._on_done = on_done  # called once, at `data: [DONE]`
        self._strip = strip_usage
        self._max_line = max_line  # also bounds an event's data lines and, in strip mode, its held bytes
        self._data_bytes = 0
        self.malformed = 0  # events whose JSON object was not a chunk the accounting could read
        self._buf = b""  # an unfinished line
        self._data: list[bytes] = []  # data lines of the event in progress
        self._hold = bytearray()  # strip mode: complete lines of the event in progress
        self.done = False  # saw `data: [DONE]`

    def feed(self, chunk: bytes, now: float) -> bytes:
        """Scan ``chunk``; return the bytes to forward to the client now."""
        # The usual case (vLLM writes one event per write): exactly one `data: ...\n\n`, nothing pending.
        if (
            not self._buf
            and not self._data
            and not self._hold
            and chunk[:6] == b"data: "
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk[-1:] == b"\n"
        ):
            return chunk if self._event(chunk[6:-2], now) else b""  # only strip mode ever drops an event
        buf = self._buf + chunk if self._buf else chunk
        strip = self._strip
        out: list[bytes] = []
        seg = 0  # strip mode: start of the current event's bytes within buf
        pos = 0
        find = buf.find
        while (nl := find(b"\n", pos)) >= 0:
            end = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl  # tolerate \r\n
            if end == pos:  # blank line: the event is complete
                keep = self._end_event(now) if self._data else True
                if strip:
                    if keep:
                        if self._hold:
                            out.append(bytes(self._hold))
                        out.append(buf[seg : nl + 1])
                    self._hold.clear()
                    seg = nl + 1
            elif buf.startswith(b"data:", pos):
                start = pos + 6 if buf[pos + 5 : pos + 6] == b" " else pos + 5
                self._data.append(buf[start:end])
                self._data_bytes += end - start
                if self._data_bytes > self._max_line:
                    raise EventTooLarge
            pos = nl + 1
        self._buf = buf[pos:]
        if len(self._buf) > self._max_line:
            raise EventTooLarge  # checked per chunk, so an endless line costs at most this much memory
        if not strip:
            return chunk
        self._hold += buf[seg:pos]
        if len(self._hold) > self._max_line:
            raise EventTooLarge
        return b"".join(out)

    def flush(self, now: float) -> bytes:
        """At end of stream: whatever is still held (an event with no closing blank line), seen at ``now``."""
        keep = self._end_event(now) if self._data else True
        rest = bytes(self._hold) + self._buf if self._strip and keep else b""
        self._hold.clear()
        self._buf = b""
        return rest

    def _end_event(self, now: float) -> bool:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data = []
        self._data_bytes = 0
        return self._event(data, now)

    def _event(self, data: bytes, now: float) -> bool:
        """Account one event's data; True when it is forwarded."""
        if data == DONE:
            self.done = True
            if self._on_done is not None:
                self._on_done()
            return True
        template = self._template
        if template is not None:
            reasoning = template.match(data)
            if reasoning is not None and self._on_plain(reasoning):
                return True
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True  # not ours to judge: forwarded as it came
        if not isinstance(obj, dict):
            return True
        try:
            usage_only = self._on_chunk(obj, now)
        except (AttributeError, TypeError):
            # A JSON object that is not a chunk (`choices` not a list of objects, a non-string delta, ...): the
            # engine's fault, forwarded as it came and counted as an anomaly, never the end of the request.
            self.malformed += 1
            return True
        if template is not None:
            template.learn(data, obj)
        return not (usage_only and self._strip)
