"""The answer of a request that asked for a JSON response format (`response_format` json_object or json_schema):
accounting.py keeps its text up to MAX_JSON_CHARS, one list append per chunk and nothing re-read until the end, so
that whether it parses is judged once, here. A longer answer is not judged (the log's `json_valid` stays null)."""

from __future__ import annotations

import orjson

MAX_JSON_CHARS = 65536


def parses(parts: list[str]) -> bool:
    """Whether the answer's text, joined, is one JSON value (surrounding whitespace allowed)."""
    try:
        orjson.loads("".join(parts).strip())
    except orjson.JSONDecodeError:
        return False
    return True
