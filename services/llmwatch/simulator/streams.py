"""Engine listeners: write SSE frames straight to the socket, or collect the answer for a JSON response.

The engine calls ``emit`` synchronously once per step for every sequence that advanced, so a token costs
one bytes concatenation and one ``transport.write``: no queue, no task switch. The HTTP/1.1 chunked framing
is added here because the bytes bypass aiohttp's writer (aiohttp still writes the headers and the final
zero-length chunk).
"""

from __future__ import annotations

import asyncio

from llmwatch.simulator.sequence import Sequence
from llmwatch.simulator.tools import ToolCall
from llmwatch.simulator.wire import DONE, ChatFrames, CompletionFrames

_CONTENT = b"content"
_REASONING = b"reasoning"


class SocketListener:
    def __init__(self, transport: asyncio.Transport, chunked: bool) -> None:
        self.transport = transport
        self.chunked = chunked

    def send(self, data: bytes) -> bool:
        if self.transport.is_closing():
            return False
        if self.chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self.transport.write(data)
        return True

    def drop(self, seq: Sequence) -> None:
        """Injected fault: close mid-answer, so the client sees a truncated body and no [DONE]."""
        self.transport.close()


class ChatStreamListener(SocketListener):
    def __init__(
        self,
        transport: asyncio.Transport,
        chunked: bool,
        frames: ChatFrames,
        think_end: int | None,
        include_usage: bool,
        tool: ToolCall | None = None,
    ) -> None:
        super().__init__(transport, chunked)
        self.frames = frames
        self.think_end = think_end  # None: no reasoning parser, the text stays inline
        self.include_usage = include_usage
        self.tool = tool

    def emit(self, seq: Sequence, start: int, end: int, finish: str | None) -> bool:
        frames = self.frames
        parts: list[bytes] = [frames.role()] if start == 0 else []
        tool = self.tool
        if tool is not None and finish == "stop":
            finish = tool.finish  # the serving layer's name for a tool-call ending; the engine's stays "stop"
        for i in range(start, end):
            last = finish if i == end - 1 else None
            if tool is not None and i >= tool.start:
                if i == tool.start:
                    parts.append(frames.tool_name(tool.call_id, tool.name, i + 1))
                    if last is not None:
                        parts.append(frames.delta(b"{}", last, i + 1))
                elif seq.tokens[i]:
                    parts.append(frames.tool_arguments(seq.tokens[i], last, i + 1))
                else:  # EOS: the parser has nothing to add, the finishing chunk has an empty delta
                    parts.append(frames.delta(b"{}", last, i + 1))
                continue
            field: bytes | None = _CONTENT
            if self.think_end is not None:
                if i < self.think_end:
                    field = _REASONING
                elif i == self.think_end:
                    if last is None:
                        continue  # vLLM's deepseek_r1 parser swallows the lone </think> token
                    field = None
            parts.append(frames.token(field, seq.tokens[i], last, i + 1))
        if finish is not None:
            if start == end:  # nothing sampled (injected empty answer)
                parts.append(frames.token(_CONTENT, "", finish, end))
            if self.include_usage:
                parts.append(frames.usage(end))
            parts.append(DONE)
        return self.send(b"".join(parts)) if parts else not self.transport.is_closing()


class CompletionStreamListener(SocketListener):
    def __init__(
        self, transport: asyncio.Transport, chunked: bool, frames: CompletionFrames, include_usage: bool
    ) -> None:
        super().__init__(transport, chunked)
        self.frames = frames
        self.include_usage = include_usage

    def emit(self, seq: Sequence, start: int, end: int, finish: str | None) -> bool:
        parts = [self.frames.token(seq.tokens[i], finish if i == end - 1 else None, i + 1) for i in range(start, end)]
        if finish is not None:
            if start == end:
                parts.append(self.frames.token("", finish, end))
            if self.include_usage:
                parts.append(self.frames.usage(end))
            parts.append(DONE)
        return self.send(b"".join(parts)) if parts else not self.transport.is_closing()


class CollectListener:
    """Non-streamed request: nothing to send until the end; a closed socket still aborts the sequence."""

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self.transport = transport

    def emit(self, seq: Sequence, start: int, end: int, finish: str | None) -> bool:
        return self.transport is None or not self.transport.is_closing()

    def drop(self, seq: Sequence) -> None:
        if self.transport is not None:
            self.transport.close()
