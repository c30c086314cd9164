"""The official openai SDK through the gateway to the simulator: what the client sees, what the log and metrics say."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from tests.support import REPO, Gateway, GatewayFactory, free_port, running, scrape, sim_cmd, total

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim_url(shared_sim_url: str) -> str:
    """The tests here set no faults and read the engine's counters as differences: one simulator serves the module."""
    return shared_sim_url


SCHEMA = json.loads((REPO / "services/llmwatch/gateway/access-log.schema.json").read_text())
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
ASK = [{"role": "user", "content": "What is 17 * 23? Answer briefly."}]


def _client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


def _valid(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for line in lines:
        jsonschema.validate(line, SCHEMA)
    return lines


def test_non_streamed_chat(start_gateway: GatewayFactory, sim_url: str) -> None:
    gw = start_gateway(sim_url)
    resp = _client(gw).chat.completions.create(model=MODEL, messages=ASK, max_tokens=400)  # type: ignore[arg-type]
    assert resp.usage is not None
    message = resp.choices[0].message
    assert message.content
    assert (message.model_extra or {}).get("reasoning"), "the reasoning parser's field is passed through"
    [line] = _valid(gw.wait_lines(1))
    assert line["stream"] is False and line["kind"] == "chat" and line["status"] == 200
    assert line["prompt_tokens"] == resp.usage.prompt_tokens
    assert line["completion_tokens"] == resp.usage.completion_tokens
    assert 0 < line["reasoning_tokens"] < line["completion_tokens"]
    assert line["answer_tokens"] == line["completion_tokens"] - line["reasoning_tokens"]
    assert line["ttft_ms"] is None and line["tokens_per_s"] > 0
    assert line["empty_response"] is False
    assert line["finish_reason"] == resp.choices[0].finish_reason


def test_stream_without_usage_request_gets_no_usage_chunk_but_exact_log(
    start_gateway: GatewayFactory, sim_url: str
) -> None:
    gw = start_gateway(sim_url)
    engine_before = total(scrape(sim_url + "/metrics"), "vllm:generation_tokens_total")
    chunks = list(_client(gw).chat.completions.create(model=MODEL, messages=ASK, max_tokens=400, stream=True))  # type: ignore[arg-type]
    assert chunks and all(c.usage is None for c in chunks), "the client did not ask for usage"
    assert all(c.choices for c in chunks)
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning") or "" for c in chunks)
    answer = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert reasoning and answer.strip()
    [line] = _valid(gw.wait_lines(1))
    engine_tokens = total(scrape(sim_url + "/metrics"), "vllm:generation_tokens_total") - engine_before
    assert line["completion_tokens"] == engine_tokens, "usage injected upstream gives the engine's exact count"
    assert line["stream"] is True and line["status"] == 200 and line["finish_reason"] == "stop"
    assert 0 < line["ttft_ms"] <= line["time_to_answer_ms"] < line["duration_ms"]
    assert line["tpot_ms"] > 0 and line["tokens_per_s"] == pytest.approx(1000 / line["tpot_ms"], rel=0.01)
    metrics = gw.metrics()
    assert total(metrics, "llmwatch_tokens_total", type="completion") == line["completion_tokens"]
    assert total(metrics, "llmwatch_tokens_total", type="reasoning") == line["reasoning_tokens"]
    assert total(metrics, "llmwatch_time_to_first_token_seconds_count") == 1
    assert total(metrics, "llmwatch_requests_total", status="200", kind="chat", model=MODEL) == 1


def test_stream_that_asked_for_usage_gets_it(start_gateway: GatewayFactory, sim_url: str) -> None:
    gw = start_gateway(sim_url)
    stream = _client(gw).chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=300, stream=True, stream_options={"include_usage": True},  # type: ignore[arg-type]
    )  # fmt: skip
    usage = [c.usage for c in stream if c.usage is not None]
    assert len(usage) == 1
    [line] = gw.wait_lines(1)
    assert line["completion_tokens"] == usage[0].completion_tokens
    assert line["prompt_tokens"] == usage[0].prompt_tokens


def test_always_return_usage_forwards_the_usage_chunk(start_gateway: GatewayFactory, sim_url: str) -> None:
    gw = start_gateway(sim_url, "--always-return-usage")
    chunks = list(_client(gw).chat.completions.create(model=MODEL, messages=ASK, max_tokens=300, stream=True))  # type: ignore[arg-type]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1
    assert gw.wait_lines(1)[0]["completion_tokens"] == usage[0].completion_tokens


@pytest.mark.parametrize("stream", [False, True])
def test_cut_off_while_thinking_is_logged_and_counted_as_empty(
    start_gateway: GatewayFactory, sim_url: str, stream: bool
) -> None:
    gw = start_gateway(sim_url)
    client = _client(gw)
    if stream:
        chunks = list(client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8, stream=True))  # type: ignore[arg-type]
        assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        resp = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8)  # type: ignore[arg-type]
        assert resp.choices[0].message.content is None and resp.choices[0].finish_reason == "length"
    [line] = _valid(gw.wait_lines(1))
    assert line["empty_response"] is True and line["finish_reason"] == "length"
    assert line["completion_tokens"] == 8 and line["reasoning_tokens"] == 8 and line["answer_tokens"] == 0
    assert line["time_to_answer_ms"] is None
    assert total(gw.metrics(), "llmwatch_empty_responses_total") == 1


def test_open_webui_task_requests_are_kind_task(start_gateway: GatewayFactory, sim_url: str) -> None:
    gw = start_gateway(sim_url)
    title = [{"role": "user", "content": "### Task:\nGenerate a concise, 3-5 word title with an emoji ..."}]
    _client(gw).chat.completions.create(model=MODEL, messages=title, max_tokens=50)  # type: ignore[arg-type]
    _client(gw).chat.completions.create(model=MODEL, messages=ASK, max_tokens=50)  # type: ignore[arg-type]
    assert [line["kind"] for line in gw.wait_lines(2)] == ["task", "chat"]
    metrics = gw.metrics()
    assert total(metrics, "llmwatch_requests_total", kind="task") == 1
    assert total(metrics, "llmwatch_requests_total", kind="chat") == 1


def test_legacy_completions_and_models(start_gateway: GatewayFactory, sim_url: str) -> None:
    gw = start_gateway(sim_url)
    client = _client(gw)
    assert [m.id for m in client.models.list()] == [MODEL]
    done = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=40)
    streamed = list(client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=40,
                                              stream=True))  # fmt: skip
    assert done.choices[0].text and streamed
    lines = _valid(gw.wait_lines(3))
    assert [(x["path"], x["kind"], x["stream"]) for x in lines] == [
        ("/v1/models", "other", False), ("/v1/completions", "chat", False), ("/v1/completions", "chat", True),
    ]  # fmt: skip
    assert lines[1]["completion_tokens"] == done.usage.completion_tokens  # type: ignore[union-attr]
    assert lines[2]["completion_tokens"] > 0


@pytest.fixture
def inline_sim(tmp_path: Path) -> Iterator[str]:
    """The simulator with no reasoning parser: R1's thinking arrives inline in `content`."""
    port = free_port()
    args = sim_cmd(port, "--gpu-profile", "h100")
    with running(args, tmp_path / "sim-inline.log", f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"


def test_inline_think_is_split_without_a_reasoning_parser(start_gateway: GatewayFactory, inline_sim: str) -> None:
    gw = start_gateway(inline_sim)
    chunks = list(_client(gw).chat.completions.create(model=MODEL, messages=ASK, max_tokens=400, stream=True))  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "</think>" in text
    [line] = _valid(gw.wait_lines(1))
    assert 0 < line["reasoning_tokens"] < line["completion_tokens"]
    assert line["empty_response"] is False
    assert line["time_to_answer_ms"] > line["ttft_ms"]
