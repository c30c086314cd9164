"""Tool calls and JSON answers, as vLLM gives them: which requests get one, and the tokens that carry it.

vLLM calls a tool when `tools` are offered and `tool_choice` is "required" or names a function (always, through
structured outputs), or is "auto" (the default with tools) and the model chose to; the simulator chooses with a
seeded share (--tool-call-share). All three need --enable-auto-tool-choice and --tool-call-parser: without a parser
vLLM refuses every tool_choice but "none" with a 400 (vllm/renderers/online_renderer.py, 0.26.0 and 0.33.0; the
lent H100's vLLM 0.26.0 answered the load test's required and named prompts so). Arguments are valid JSON for the
function's `parameters` schema.
`response_format` json_object / json_schema makes the answer a JSON text. The finish reason the client sees is
"tool_calls" for auto and required, "stop" for a named function; the engine's own counters keep "stop".
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from llmwatch.simulator.protocol import ApiError, bad_request
from llmwatch.simulator.textgen import THINK_END, Generation

AUTO_NEEDS_FLAG = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
FORCED_NEEDS_PARSER = "tool_choice={} requires --tool-call-parser to be set"  # {}: "required" or function "NAME"
_PIECE = re.compile(r'"[^"]{0,12}"?|[^"]{1,6}')  # argument fragments of a few characters, as a parser streams them


@dataclass(frozen=True)
class ToolCall:
    """The one call of a tool-call answer: tokens[start] is its name, the rest up to EOS its argument pieces."""

    call_id: str
    name: str
    start: int
    finish: str  # what the client sees when the engine stops: "tool_calls", or "stop" for a named tool_choice


def _object_for(schema: Any, depth: int = 0) -> Any:
    """A value valid for the JSON ``schema`` (the subset tools use: type, properties, required, enum, items)."""
    if not isinstance(schema, dict) or depth > 4:
        return {}
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "string":
        return "Paris"
    if kind == "integer":
        return 3
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [_object_for(schema.get("items"), depth + 1)] if schema.get("minItems") else []
    if kind == "null":
        return None
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    required = schema.get("required")
    names = [n for n in props if not isinstance(required, list) or n in required] or list(props)[:1]
    return {name: _object_for(props[name], depth + 1) for name in names}


def _functions(tools: Any) -> dict[str, dict[str, Any]]:
    """name -> parameters schema of each function tool offered."""
    out: dict[str, dict[str, Any]] = {}
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            params = function.get("parameters")
            out[function["name"]] = params if isinstance(params, dict) else {}
    return out


def choose_tool(body: dict[str, Any], rng: random.Random, share: float, tools_on: bool) -> tuple[str, str] | None:
    """(function name, finish reason) when this request answers with a tool call; ApiError as vLLM refuses.

    ``tools_on``: the engine runs with --enable-auto-tool-choice and a --tool-call-parser."""
    functions = _functions(body.get("tools"))
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if name not in functions:
            raise bad_request(f"Tool '{name}' has not been passed in `tools`.", "tool_choice")
        _need_parser(tools_on, f'function "{name}"')
        return str(name), "stop"
    if not functions or choice == "none":
        return None
    if choice == "required":
        _need_parser(tools_on, '"required"')
        return next(iter(functions)), "tool_calls"
    if choice not in (None, "auto"):
        raise bad_request(f"Invalid tool_choice {choice!r}.", "tool_choice")
    if not tools_on:
        raise ApiError(400, AUTO_NEEDS_FLAG, "BadRequestError")
    if rng.random() >= share:
        return None
    return next(iter(functions)), "tool_calls"


def _need_parser(tools_on: bool, choice: str) -> None:
    """vLLM's 400 for a forced tool choice (``choice``: "required" or function "NAME") on an engine without a parser."""
    if not tools_on:
        raise ApiError(400, FORCED_NEEDS_PARSER.format(choice), "BadRequestError")


def json_answer(body: dict[str, Any], text: str) -> str | None:
    """The JSON text of a `response_format` json_object / json_schema answer; None when none was asked."""
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return orjson.dumps({"answer": text.strip()}).decode()
    if kind == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return orjson.dumps(_object_for(schema)).decode()
    return None


def pieces(text: str) -> list[str]:
    """``text`` cut into the few-character fragments a tool or structured-output stream carries."""
    return _PIECE.findall(text) or [text]


def with_tool_call(gen: Generation, body: dict[str, Any], name: str, finish: str) -> tuple[Generation, ToolCall]:
    """The reasoning of ``gen``, then a call of ``name``: its name token, its argument pieces, EOS."""
    arguments = orjson.dumps(_object_for(_functions(body.get("tools")).get(name))).decode()
    head = gen.tokens[: gen.think_end + 1]  # reasoning and </think>
    tokens = [*head, name, *pieces(arguments), ""]
    call = ToolCall(f"chatcmpl-tool-{uuid.uuid4().hex}", name, len(head), finish)
    return Generation(tokens=tokens, think_end=gen.think_end), call


def with_json_answer(gen: Generation, answer: str) -> Generation:
    """The reasoning of ``gen``, then ``answer`` (a JSON text) in place of its prose, then EOS."""
    assert gen.tokens[gen.think_end] == THINK_END
    return Generation(tokens=[*gen.tokens[: gen.think_end + 1], *pieces(answer), ""], think_end=gen.think_end)


def arguments_of(tokens: list[str], call: ToolCall) -> str:
    """The argument text of ``call`` as far as ``tokens`` got (EOS excluded)."""
    return "".join(t for t in tokens[call.start + 1 :] if t)
