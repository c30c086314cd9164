"""Request bodies and the checks vLLM runs before scheduling, with vLLM's error shapes and messages."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmwatch.openai_error import error_body
from llmwatch.simulator.wire import phrase, validation_message
from llmwatch.vllm.model import R1_SAMPLING


class ApiError(Exception):
    """An error response in vLLM's envelope."""

    def __init__(self, status: int, message: str, err_type: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, err_type, param, status)


def bad_request(message: str, parameter: str | None = None, value: Any = None) -> ApiError:
    """vLLM's VLLMValidationError -> 400 BadRequestError with `param` set."""
    return ApiError(400, validation_message(message, parameter, value), "BadRequestError", parameter)


class StreamOptions(BaseModel):
    include_usage: bool | None = True
    continuous_usage_stats: bool | None = False


class _Base(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    max_tokens: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    n: int | None = 1
    request_id: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None

    def filters_tokens(self) -> bool:
        """Whether the sampler filters this request's logits by top-p or top-k. Unset fields take the model's
        generation config (R1's sampling), as vLLM's do; greedy requests (temperature 0) are not filtered."""
        temperature = R1_SAMPLING["temperature"] if self.temperature is None else self.temperature
        top_p = R1_SAMPLING["top_p"] if self.top_p is None else self.top_p
        return temperature > 0 and (top_p < 1 or (self.top_k or 0) > 0)

    def usage_flags(self) -> tuple[bool, bool]:
        """(include_usage, continuous_usage) as vLLM's should_include_usage decides them."""
        if self.stream_options is None:
            return False, False
        include = bool(self.stream_options.include_usage)
        return include, include and bool(self.stream_options.continuous_usage_stats)


class ChatRequest(_Base):
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = None

    def output_limit(self) -> tuple[int | None, str]:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens, "max_completion_tokens"
        return self.max_tokens, "max_tokens"


class CompletionRequest(_Base):
    prompt: str | list[str]

    def output_limit(self) -> tuple[int | None, str]:
        return self.max_tokens, "max_tokens"

    def prompt_text(self) -> str:
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise bad_request("The simulator serves one prompt per request.", "prompt")
            return self.prompt[0]
        return self.prompt


RequestT = TypeVar("RequestT", bound="_Base")


def parse(model: type[RequestT], body: bytes) -> RequestT:
    """Decode and validate; failures look like vLLM's RequestValidationError handler (type "Bad Request")."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"JSON decode error: {exc}", phrase(400)) from exc
    if not isinstance(data, dict):
        raise ApiError(400, "Input should be a valid dictionary or object to extract fields from", phrase(400))
    try:
        request = model.model_validate(data)
    except ValidationError as exc:
        errors = [{"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise ApiError(400, f"{len(errors)} validation error(s): {errors}", phrase(400)) from exc
    if request.stream_options is not None and not request.stream:
        raise bad_request("Stream options can only be defined when `stream=True`.", "stream_options")
    if request.n not in (None, 1):
        raise bad_request("The simulator supports n=1 only.", "n", request.n)
    return request


def check_model(requested: str | None, served: str) -> None:
    if requested is not None and requested != served:
        raise ApiError(404, f"The model `{requested}` does not exist.", "NotFoundError")


def check_lengths(prompt_tokens: int, max_tokens: int | None, param: str, max_model_len: int) -> None:
    """vLLM's TokenizeParams checks (vllm/renderers/params.py) and SamplingParams' max_tokens >= 1."""
    max_output = max_tokens or 0
    if max_output > max_model_len:
        raise bad_request(
            f"{param}={max_output}cannot be greater than max_model_len=max_total_tokens="
            f"{max_model_len}. Please request fewer output tokens.",
            param,
            max_output,
        )
    max_input = max_model_len - max_output
    if prompt_tokens > max_input:
        raise bad_request(
            f"You passed {prompt_tokens} input tokens and requested {max_output} output tokens. "
            f"However, the model's context length is only {max_model_len} tokens, resulting in a "
            f"maximum input length of {max_input} tokens. Please reduce the length of the input "
            "prompt.",
            "input_tokens",
            prompt_tokens,
        )
    if max_tokens is not None and max_tokens < 1:
        raise bad_request(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens", max_tokens)
