"""Tool calls in a completion: how many, and their function names (at most MAX_TOOL_NAMES, each cut to
MAX_TOOL_NAME_CHARS). Streamed, a call is a new `index` among `delta.tool_calls` (or an `id` without one); later
deltas of the same index add to its arguments. Whole, each entry of `message.tool_calls` is one call."""

from __future__ import annotations

from typing import Any

MAX_TOOL_NAMES = 8
MAX_TOOL_NAME_CHARS = 64
MAX_TOOL_CALLS_TRACKED = 256  # distinct call indexes remembered; the count saturates there


class ToolCalls:
    __slots__ = ("count", "indexes", "names")

    def __init__(self) -> None:
        self.count = 0
        self.indexes: set[int] = set()
        self.names: list[str] = []

    def on_delta(self, calls: list[Any]) -> None:
        """One streamed `delta.tool_calls`: new calls (unseen indexes) or more of a call's arguments."""
        for call in calls:
            if not isinstance(call, dict):
                continue
            index = call.get("index")
            if isinstance(index, int) and not isinstance(index, bool):
                if index in self.indexes or len(self.indexes) >= MAX_TOOL_CALLS_TRACKED:
                    if len(self.names) < self.count:
                        self._take_name(call)  # a call whose name came after its first delta: still one call
                    continue
                self.indexes.add(index)
            elif not call.get("id"):
                continue  # neither an index nor an id: not a call this gateway can count
            self.count += 1
            self._take_name(call)

    def on_message(self, calls: Any) -> int:
        """A whole `message.tool_calls`; returns the characters of their arguments (answer text, for apportioning
        reasoning tokens)."""
        chars = 0
        for call in calls[:MAX_TOOL_CALLS_TRACKED] if isinstance(calls, list) else ():
            if isinstance(call, dict):
                self.count += 1
                self._take_name(call)
                function = call.get("function")
                arguments = function.get("arguments") if isinstance(function, dict) else None
                if isinstance(arguments, str):
                    chars += len(arguments)
        return chars

    def _take_name(self, call: dict[str, Any]) -> None:
        function = call.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name and len(self.names) < MAX_TOOL_NAMES:
            self.names.append(name[:MAX_TOOL_NAME_CHARS])
