"""Tool calls and JSON output are answers: through the gateway to the simulator and to a fake engine that replays
vLLM's exact chunks (tests/support/vllm_chunks.py cites the vLLM source of each shape). Each request: one
schema-valid line, not empty, TTFT set when streamed, tool calls counted, the answer-kind metric counted once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from llmwatch.vllm.model import SERVE_FLAGS
from tests.support import REPO, Gateway, GatewayFactory, free_port, running, sim_cmd, total
from tests.support.vllm_chunks import MODEL

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim_url(shared_sim_url: str) -> str:
    """The tests here set no faults and read the engine's counters as differences: one simulator serves the module."""
    return shared_sim_url


SCHEMA = json.loads((REPO / "services/llmwatch/gateway/access-log.schema.json").read_text())
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                           "days": {"type": "integer"}},
            "required": ["city", "unit"],
        },
    },
}  # fmt: skip
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def tool_sim(tmp_path: Path) -> Iterator[str]:
    """The simulator with vLLM's tool flags on and every auto request answered with a tool call."""
    yield from _sim(tmp_path, *SERVE_FLAGS, "--tool-call-share", "1")


@pytest.fixture
def toolless_sim(tmp_path: Path) -> Iterator[str]:
    """The simulator started as vLLM is by default: no --enable-auto-tool-choice, no --tool-call-parser."""
    yield from _sim(tmp_path, "--reasoning-parser", "deepseek_r1")


def _sim(tmp_path: Path, *flags: str) -> Iterator[str]:
    port = free_port()
    args = sim_cmd(port, *flags, "--gpu-profile", "h100", "--speed", "20")
    with running(args, tmp_path / "sim.log", f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"


def _chat(gw: Gateway, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json={"model": MODEL, "messages": ASK, **body},
                      headers=headers, timeout=30.0)  # fmt: skip


def _stream_calls(text: str) -> tuple[list[dict[str, Any]], list[str | None]]:
    """The tool-call deltas and finish reasons of an SSE body, as a client reassembles them."""
    deltas, finishes = [], []
    for line in text.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                deltas += choice["delta"].get("tool_calls") or []
                finishes.append(choice.get("finish_reason"))
    return deltas, finishes


def _line(gw: Gateway, n: int) -> dict[str, Any]:
    lines = gw.wait_lines(n + 1)
    assert len(lines) == n + 1
    jsonschema.validate(lines[n], SCHEMA)
    return lines[n]


def _assert_tool_answer(line: dict[str, Any], stream: bool, name: str = "get_weather") -> None:
    assert line["status"] == 200 and line["stream"] is stream
    assert line["empty_response"] is False
    assert (line["answer_kind"], line["tool_calls"], line["tool_names"]) == ("tool_calls", 1, [name])
    assert line["tools_offered"] is True
    assert line["completion_tokens"] and line["answer_tokens"] and line["answer_tokens"] > 0
    if stream:
        assert line["ttft_ms"] is not None and line["time_to_answer_ms"] is not None
        assert line["time_to_answer_ms"] >= line["ttft_ms"]


@pytest.mark.parametrize("stream", [True, False])
def test_tool_call_answers_from_the_fake_vllm_are_answers(
    start_gateway: GatewayFactory, fake_vllm: str, stream: bool
) -> None:
    gw = start_gateway(fake_vllm, "--forward-header", "X-Fake")  # the fake engine's mode header
    resp = _chat(gw, {"tools": [WEATHER], "stream": stream}, **{"X-Fake": "tool-call"})
    assert resp.status_code == 200
    line = _line(gw, 0)
    _assert_tool_answer(line, stream)
    assert line["finish_reason"] == "tool_calls"
    assert line["reasoning_tokens"] and line["reasoning_tokens"] > 0  # the mixed stream: reasoning, then the call
    metrics = gw.metrics()
    assert total(metrics, "llmwatch_answers_total", answer_kind="tool_calls") == 1
    assert total(metrics, "llmwatch_answers_total") == 1
    assert total(metrics, "llmwatch_empty_responses_total") == 0
    if stream:
        assert total(metrics, "llmwatch_time_to_first_token_seconds_count") == 1


@pytest.mark.parametrize("stream", [True, False])
def test_auto_tool_calls_from_the_simulator(start_gateway: GatewayFactory, tool_sim: str, stream: bool) -> None:
    gw = start_gateway(tool_sim)
    resp = _chat(gw, {"tools": [WEATHER, CLOCK], "stream": stream, "stream_options": {"include_usage": True}}
                 if stream else {"tools": [WEATHER, CLOCK]})  # fmt: skip
    assert resp.status_code == 200, resp.text
    if stream:
        deltas, finishes = _stream_calls(resp.text)
        assert deltas[0]["function"] == {"name": "get_weather"} and deltas[0]["id"].startswith("chatcmpl-tool-")
        arguments = "".join(d["function"].get("arguments", "") for d in deltas[1:])
        assert finishes[-1] == "tool_calls"
    else:
        message = resp.json()["choices"][0]["message"]
        assert message["content"] is None and resp.json()["choices"][0]["finish_reason"] == "tool_calls"
        arguments = message["tool_calls"][0]["function"]["arguments"]
    jsonschema.validate(json.loads(arguments), WEATHER["function"]["parameters"])  # type: ignore[index]
    line = _line(gw, 0)
    _assert_tool_answer(line, stream)
    assert total(gw.metrics(), "llmwatch_empty_responses_total") == 0


@pytest.mark.parametrize(
    ("choice", "finish", "name"),
    [("required", "tool_calls", "get_weather"), ({"type": "function", "function": {"name": "get_time"}}, "stop",
                                                 "get_time")],
)  # fmt: skip
@pytest.mark.parametrize("stream", [True, False])
def test_required_and_named_tool_choice(
    start_gateway: GatewayFactory, tool_sim: str, choice: Any, finish: str, name: str, stream: bool
) -> None:
    gw = start_gateway(tool_sim)
    resp = _chat(gw, {"tools": [WEATHER, CLOCK], "tool_choice": choice, "stream": stream})
    assert resp.status_code == 200, resp.text
    if not stream:
        body = resp.json()["choices"][0]
        assert body["finish_reason"] == finish and body["message"]["content"] == ""
        assert body["message"]["tool_calls"][0]["function"]["name"] == name
    else:
        assert _stream_calls(resp.text)[1][-1] == finish
    line = _line(gw, 0)
    _assert_tool_answer(line, stream, name)
    assert line["finish_reason"] == finish


@pytest.mark.parametrize("choice", ["auto", "required", {"type": "function", "function": {"name": "get_weather"}}])
def test_tool_choice_without_the_flags_is_refused_like_vllm(
    start_gateway: GatewayFactory, toolless_sim: str, choice: Any
) -> None:
    gw = start_gateway(toolless_sim)
    resp = _chat(gw, {"tools": [WEATHER], "tool_choice": choice})
    assert resp.status_code == 400 and "--tool-call-parser to be set" in resp.json()["error"]["message"]
    line = _line(gw, 0)
    assert line["answer_kind"] is None and line["tool_calls"] is None and line["completion_tokens"] is None


@pytest.mark.parametrize("stream", [True, False])
def test_json_format_answers_are_judged(start_gateway: GatewayFactory, sim_url: str, stream: bool) -> None:
    gw = start_gateway(sim_url)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    formats = [{"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}]
    for n, response_format in enumerate(formats):
        assert _chat(gw, {"response_format": response_format, "stream": stream}).status_code == 200
        line = _line(gw, n)
        assert (line["response_format"], line["json_valid"]) == (response_format["type"], True)
        assert (line["answer_kind"], line["empty_response"], line["tools_offered"]) == ("text", False, False)
    assert _chat(gw, {"stream": stream}).status_code == 200
    assert (_line(gw, 2)["response_format"], _line(gw, 2)["json_valid"]) == (None, None)


@pytest.mark.parametrize("stream", [True, False])
def test_json_format_request_whose_answer_is_not_json(
    start_gateway: GatewayFactory, fake_vllm: str, stream: bool
) -> None:
    gw = start_gateway(fake_vllm, "--forward-header", "X-Fake")  # the fake engine's mode header
    # The fake engine ignores response_format: its answer is "c" streamed, "4" whole (a JSON number, so valid).
    resp = _chat(gw, {"response_format": {"type": "json_object"}, "stream": stream})
    assert resp.status_code == 200
    line = _line(gw, 0)
    assert (line["response_format"], line["json_valid"], line["status"]) == ("json_object", not stream, 200)
    assert line["error_type"] is None  # a field, not an error


@pytest.mark.parametrize("stream", [True, False])
def test_refused_requests_have_null_token_fields_streamed_or_not(
    start_gateway: GatewayFactory, fake_vllm: str, stream: bool
) -> None:
    gw = start_gateway(fake_vllm, "--forward-header", "X-Fake")  # the fake engine's mode header
    assert _chat(gw, {"stream": stream}, **{"X-Fake": "error400"}).status_code == 400
    line = _line(gw, 0)
    fields = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "answer_tokens", "total_tokens", "tool_calls")
    assert {f: line[f] for f in fields} == dict.fromkeys(fields)
    assert (line["answer_kind"], line["empty_response"]) == (None, False)
