"""vLLM's JSON and SSE shapes, byte for byte, built from per-request templates (no per-token dicts).

Field order and presence follow vLLM's pydantic models and how it dumps them (see docs/simulator.md):
chat chunks are `model_dump_json(exclude_unset=True)`, so only fields vLLM passes explicitly appear;
completion chunks are `exclude_unset=False`; the usage-only chunk adds `exclude_none=True`; non-streamed
responses are full `model_dump()`s. Usage is {prompt_tokens, total_tokens, completion_tokens} (vLLM's
UsageInfo has no completion_tokens_details).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def _usage(prompt: int, completion: int) -> bytes:
    return b'{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}' % (prompt, prompt + completion, completion)


def usage_dict(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": None,
    }


class _Frames:
    """What every stream frame of one request starts with, and its usage-only chunk."""

    object_type = b""

    def __init__(self, request_id: str, created: int, model: str, prompt_tokens: int, continuous_usage: bool) -> None:
        self.head = b'data: {"id":%b,"object":"%b","created":%d,"model":%b,"choices":[' % (
            orjson.dumps(request_id),
            self.object_type,
            created,
            orjson.dumps(model),
        )
        self.prompt_tokens = prompt_tokens
        self.continuous = continuous_usage

    def usage(self, completion: int) -> bytes:
        return self.head + b'],"usage":%b}\n\n' % _usage(self.prompt_tokens, completion)


class ChatFrames(_Frames):
    """`chat.completion.chunk` frames of one request."""

    object_type = b"chat.completion.chunk"

    def _tail(self, completion: int) -> bytes:
        if self.continuous:
            return b'],"usage":%b}\n\n' % _usage(self.prompt_tokens, completion)
        return b"]}\n\n"

    def role(self) -> bytes:
        usage = b',"usage":%b' % _usage(self.prompt_tokens, 0) if self.continuous else b""
        return (
            self.head + b'{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,'
            b'"finish_reason":null}]' + usage + b',"prompt_token_ids":null}\n\n'
        )

    def token(self, field: bytes | None, text: str, finish: str | None, completion: int) -> bytes:
        """One delta; ``field`` is b"content" or b"reasoning", None for an empty delta (`{}`)."""
        delta = b'{"%b":%b}' % (field, orjson.dumps(text)) if field else b"{}"
        return self.delta(delta, finish, completion)

    def tool_name(self, call_id: str, name: str, completion: int) -> bytes:
        """A tool call's first delta: DeltaToolCall(index, type, id, function={name}), dumped exclude_unset."""
        call = b'{"id":%b,"type":"function","index":0,"function":{"name":%b}}' % (
            orjson.dumps(call_id),
            orjson.dumps(name),
        )
        return self.delta(b'{"tool_calls":[%b]}' % call, None, completion)

    def tool_arguments(self, text: str, finish: str | None, completion: int) -> bytes:
        """More of the call's arguments: DeltaToolCall(index, function={arguments})."""
        call = b'{"index":0,"function":{"arguments":%b}}' % orjson.dumps(text)
        return self.delta(b'{"tool_calls":[%b]}' % call, finish, completion)

    def delta(self, delta: bytes, finish: str | None, completion: int) -> bytes:
        """One choice chunk carrying the serialised ``delta`` object."""
        if finish is None:
            choice = b'{"index":0,"delta":%b,"logprobs":null,"finish_reason":null,"token_ids":null}' % delta
        else:
            choice = (
                b'{"index":0,"delta":%b,"logprobs":null,"finish_reason":"%b","stop_reason":null,'
                b'"token_ids":null}' % (delta, finish.encode())
            )
        return self.head + choice + self._tail(completion)


class CompletionFrames(_Frames):
    """`text_completion` stream frames of one request (every field present, as vLLM dumps them)."""

    object_type = b"text_completion"

    def token(self, text: str, finish: str | None, completion: int) -> bytes:
        reason = b"null" if finish is None else b'"%b"' % finish.encode()
        if self.continuous:
            p = self.prompt_tokens
            usage = b'{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d,"prompt_tokens_details":null}' % (
                p,
                p + completion,
                completion,
            )
        else:
            usage = b"null"
        return self.head + (
            b'{"index":0,"text":%b,"logprobs":null,"finish_reason":%b,"stop_reason":null,'
            b'"prompt_token_ids":null,"token_ids":null}],"usage":%b}\n\n' % (orjson.dumps(text), reason, usage)
        )


def chat_response(
    request_id: str,
    created: int,
    model: str,
    content: str | None,
    reasoning: str | None,
    finish: str,
    prompt: int,
    completion: int,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": tool_calls or [],
        "reasoning": reasoning,
    }
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish,
        "stop_reason": None,
        "token_ids": None,
    }
    return _response(
        "chat.completion", request_id, created, model, choice, prompt, completion,
        prompt_logprobs=None, prompt_token_ids=None, kv_transfer_params=None,
    )  # fmt: skip


def completion_response(
    request_id: str, created: int, model: str, text: str, finish: str, prompt: int, completion: int
) -> dict[str, Any]:
    choice = {
        "index": 0,
        "text": text,
        "logprobs": None,
        "finish_reason": finish,
        "stop_reason": None,
        "token_ids": None,
        "prompt_logprobs": None,
        "prompt_token_ids": None,
    }
    return _response("text_completion", request_id, created, model, choice, prompt, completion, kv_transfer_params=None)


def _response(
    object_type: str, request_id: str, created: int, model: str, choice: dict[str, Any], prompt: int,
    completion: int, **tail: None,
) -> dict[str, Any]:  # fmt: skip
    """A non-streamed response in vLLM's field order; ``tail`` holds the fields that follow `usage`."""
    return {
        "id": request_id,
        "object": object_type,
        "created": created,
        "model": model,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage_dict(prompt, completion),
        **tail,
    }


def validation_message(message: str, parameter: str | None = None, value: Any = None) -> str:
    """str(VLLMValidationError): the message, then `(parameter=..., value=...)` when given."""
    extras = [f"parameter={parameter}"] if parameter is not None else []
    if value is not None:
        extras.append(f"value={value}")
    return f"{message} ({', '.join(extras)})" if extras else message


def phrase(status: int) -> str:
    return HTTPStatus(status).phrase


def models_body(model: str, max_model_len: int, created: int, permission_id: str) -> dict[str, Any]:
    permission = {
        "id": permission_id,
        "object": "model_permission",
        "created": created,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }
    card = {
        "id": model,
        "object": "model",
        "created": created,
        "owned_by": "vllm",
        "root": model,
        "parent": None,
        "max_model_len": max_model_len,
        "permission": [permission],
    }
    return {"object": "list", "data": [card]}


def tool_call_dict(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """ToolCall as a non-streamed message carries it: id, type, function {name, arguments}."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
