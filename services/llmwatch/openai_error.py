"""The OpenAI error envelope, the one shape every llmwatch HTTP error takes.

{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}, as the OpenAI API and vLLM's ErrorResponse send
it, so that SDK clients show the message.
"""

from __future__ import annotations

from typing import Any

import orjson


def error_object(message: str, type_: str, param: str | None = None, code: str | int | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_body(message: str, type_: str, param: str | None = None, code: str | int | None = None) -> bytes:
    return orjson.dumps(error_object(message, type_, param, code))
