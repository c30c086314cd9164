"""The simulator's tool-call choices and arguments (llmwatch.simulator.tools), checked against vLLM's rules as
docs/simulator.md cites them: required and named always call, every tool_choice but none needs the flags,
arguments fit the schema."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmwatch.simulator.protocol import ApiError
from llmwatch.simulator.settings import SimSettings
from llmwatch.simulator.textgen import generate
from llmwatch.simulator.tools import AUTO_NEEDS_FLAG, choose_tool, json_answer, pieces, with_tool_call

pytestmark = pytest.mark.unit

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"}, "unit": {"enum": ["c", "f"]}, "days": {"type": ["integer", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "where": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]},
        "optional": {"type": "boolean"},
    },
    "required": ["city", "unit", "days", "tags", "where"],
}  # fmt: skip
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}},
         {"type": "function", "function": {"name": "g"}}]  # fmt: skip


def refusal(body: dict[str, object]) -> str:
    with pytest.raises(ApiError) as refused:
        choose_tool(body, random.Random(0), 1.0, False)
    assert refused.value.status == 400
    return str(json.loads(refused.value.body)["error"]["message"])


def test_tool_choice_rules() -> None:
    rng = random.Random(0)
    assert choose_tool({"tools": TOOLS, "tool_choice": "required"}, rng, 0.0, True) == ("f", "tool_calls")
    named = {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "g"}}}
    assert choose_tool(named, rng, 0.0, True) == ("g", "stop")
    assert choose_tool({"tools": TOOLS, "tool_choice": "none"}, rng, 1.0, False) is None
    assert choose_tool({}, rng, 1.0, False) is None
    # Without --enable-auto-tool-choice and a parser, vLLM 0.26.0 on the lent H100 answered these very words.
    assert refusal({"tools": TOOLS}) == AUTO_NEEDS_FLAG
    assert (
        refusal({"tools": TOOLS, "tool_choice": "required"})
        == 'tool_choice="required" requires --tool-call-parser to be set'
    )
    assert refusal(named) == 'tool_choice=function "g" requires --tool-call-parser to be set'
    with pytest.raises(ApiError):
        choose_tool({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, rng, 1, True)
    share = [choose_tool({"tools": TOOLS}, random.Random(i), 0.3, True) is not None for i in range(400)]
    assert 0.2 < sum(share) / len(share) < 0.4  # the seeded share


def test_arguments_and_json_answers_fit_their_schemas() -> None:
    gen, call = with_tool_call(generate("weather?", 0), {"tools": TOOLS}, "f", "tool_calls")
    assert gen.tokens[call.start] == "f" and gen.tokens[-1] == ""
    arguments = json.loads("".join(gen.tokens[call.start + 1 : -1]))
    jsonschema.validate(arguments, SCHEMA)
    spec = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}
    jsonschema.validate(json.loads(json_answer({"response_format": spec}, "") or ""), SCHEMA)
    assert json.loads(json_answer({"response_format": {"type": "json_object"}}, " Hi. ") or "") == {"answer": "Hi."}
    assert json_answer({"response_format": {"type": "text"}}, "x") is None


def test_auto_tool_choice_without_a_parser_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="--enable-auto-tool-choice requires --tool-call-parser"):
        SimSettings(enable_auto_tool_choice=True)
    assert SimSettings(enable_auto_tool_choice=True, tool_call_parser="hermes").tool_call_parser == "hermes"


@given(st.text(max_size=200))
def test_pieces_join_back_to_the_text(text: str) -> None:
    assert "".join(pieces(text)) == text or text == ""
