"""The answer of a request that asked for a JSON response format (`response_format` json_object or json_schema):
its text kept up to MAX_JSON_CHARS, one list append per chunk and nothing re-read until the end, so that whether it
parses is judged once. A longer answer is not judged (the log's `json_valid` stays null)."""

from __future__ import annotations

import orjson

MAX_JSON_CHARS = 65536


class JsonAnswer:
    __slots__ = ("_chars", "_parts")

    def __init__(self) -> None:
        self._chars = 0
        self._parts: list[str] = []

    def keep(self, text: str) -> bool:
        """Keep more of the answer; False once it is too long to judge."""
        self._chars += len(text)
        if self._chars > MAX_JSON_CHARS:
            return False
        self._parts.append(text)
        return True

    def valid(self) -> bool:
        try:
            orjson.loads("".join(self._parts).strip())
        except orjson.JSONDecodeError:
            return False
        return True
