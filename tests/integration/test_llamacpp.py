"""A real llama.cpp server (tiny random-weight model, the distill's tokenizer and template) behind the real gateway,
driven with the official openai SDK: what the client sees, what the access log and metrics say.

Random weights can't be steered, so a reply stays inside <think> unless a grammar forces `</think>` out of it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.support import REPO, Samples, free_port, running, scrape, total, wait_until
from tests.support.compose import compose, filled_env_text
from tests.support.llamacpp import (
    MODEL,
    THINK_CLOSE_ID,
    capture_names,
    llama_binary,
    llama_server,
    tiny_model,
)
from tests.support.promql import series_names

pytestmark = pytest.mark.integration

SCHEMA = json.loads((REPO / "services/llmwatch/gateway/access-log.schema.json").read_text())
ASK = [{"role": "user", "content": "What is 17 * 23?"}]
# "ab</think>cd": some reasoning, the end of the reasoning, then an answer; nothing else may be sampled.
THINK_THEN_ANSWER = 'root ::= "ab" "</think>" "cd"'
StartGateway = Callable[..., Any]  # the start_gateway fixture of tests/conftest.py


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_server(tmp_path_factory.mktemp("llama") / "llama-server.log") as url:
        yield url


def _client(gw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


def _line(gw: Any) -> dict[str, Any]:
    [line] = gw.wait_lines(1)
    jsonschema.validate(line, SCHEMA)
    return line


def _idle_metrics(url: str) -> Samples:
    """llama.cpp's counters once no slot is busy: it adds a request's tokens when the slot is released, which can be
    just after the client has read the last byte."""
    return wait_until(
        lambda: (m := scrape(url + "/metrics")) and total(m, "llamacpp:requests_processing") == 0 and m,
        10, "llama-server to release its slots",
    )  # fmt: skip


def _stream(gw: Any, **ask: Any) -> list[ChatCompletionChunk]:
    """A streamed chat through the SDK, read to the end of the body as Open WebUI's client does. The SDK's own
    iterator closes the connection at `data: [DONE]`; see test_client_closing_at_done_is_not_a_disconnect."""
    chunks = []
    with _client(gw).chat.completions.with_streaming_response.create(model=MODEL, stream=True, **ask) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(ChatCompletionChunk.model_validate_json(line[6:]))
    return chunks


def _extra(obj: Any) -> dict[str, Any]:
    return obj.model_extra or {}


def test_server_speaks_the_distills_tokenizer_and_template(llama_url: str) -> None:
    """Prompt token counts match the real model: its special tokens are single tokens at their published ids."""
    tokens = httpx.post(llama_url + "/tokenize", json={"content": "<think>x</think>"}).json()["tokens"]
    assert tokens[0] == THINK_CLOSE_ID - 1 and tokens[-1] == THINK_CLOSE_ID
    prompt = httpx.post(llama_url + "/apply-template", json={"messages": ASK}).json()["prompt"]
    # llama.cpp drops the template's leading BOS text and adds the BOS token when it tokenizes.
    assert prompt == "<｜User｜>What is 17 * 23?<｜Assistant｜><think>\n"
    models = httpx.get(llama_url + "/v1/models").json()["data"]
    assert [m["id"] for m in models] == [MODEL], "--alias names the model, not the file"


def test_non_streamed_usage_matches_the_log_and_thinking_only_is_empty(
    start_gateway: StartGateway, llama_url: str
) -> None:
    gw = start_gateway(llama_url)
    resp = _client(gw).chat.completions.create(model=MODEL, messages=ASK, max_tokens=8)  # type: ignore[arg-type]
    assert resp.usage is not None and resp.usage.completion_tokens == 8
    message = resp.choices[0].message
    assert _extra(message).get("reasoning_content"), "llama.cpp's deepseek format puts the <think> part here"
    assert not message.content and resp.choices[0].finish_reason == "length"
    line = _line(gw)
    assert (line["prompt_tokens"], line["completion_tokens"]) == (resp.usage.prompt_tokens, 8)
    assert line["reasoning_tokens"] == 8 and line["answer_tokens"] == 0
    assert line["empty_response"] is True and line["finish_reason"] == "length"
    assert line["tokens_per_s"] > 0 and line["ttft_ms"] is None
    assert total(gw.metrics(), "llmwatch_empty_responses_total") == 1


def test_stream_with_usage_gives_ttft_tpot_and_the_engines_counts(start_gateway: StartGateway, llama_url: str) -> None:
    gw = start_gateway(llama_url)
    before = total(_idle_metrics(llama_url), "llamacpp:tokens_predicted_total")
    chunks = _stream(gw, messages=ASK, max_tokens=6, stream_options={"include_usage": True})
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 6
    reasoning = "".join(_extra(c.choices[0].delta).get("reasoning_content") or "" for c in chunks if c.choices)
    assert reasoning and not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    line = _line(gw)
    assert line["stream"] is True and line["status"] == 200 and line["finish_reason"] == "length"
    assert (line["prompt_tokens"], line["completion_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert line["completion_tokens"] == total(_idle_metrics(llama_url), "llamacpp:tokens_predicted_total") - before
    assert 0 < line["ttft_ms"] < line["duration_ms"] and line["tpot_ms"] > 0
    assert line["empty_response"] is True and line["time_to_answer_ms"] is None


def test_stream_without_usage_request_is_still_counted_exactly(start_gateway: StartGateway, llama_url: str) -> None:
    gw = start_gateway(llama_url)
    before = _idle_metrics(llama_url)
    chunks = _stream(gw, messages=ASK, max_tokens=5)
    assert chunks and all(c.usage is None for c in chunks), "the client did not ask for usage"
    after = _idle_metrics(llama_url)
    line = _line(gw)
    assert line["completion_tokens"] == 5, "usage asked for upstream gives the engine's exact count"
    engine_prompt = sum(
        total(after, name) - total(before, name)
        for name in ("llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total")
    )
    assert line["prompt_tokens"] == engine_prompt


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_is_split_from_the_answer(start_gateway: StartGateway, llama_url: str, stream: bool) -> None:
    gw = start_gateway(llama_url)
    extra = {"grammar": THINK_THEN_ANSWER}
    client = _client(gw)
    if stream:
        chunks = _stream(gw, messages=ASK, max_tokens=20, extra_body=extra)
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        reasoning = "".join(_extra(d).get("reasoning_content") or "" for d in deltas)
        answer = "".join(d.content or "" for d in deltas)
    else:
        resp = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=20, extra_body=extra)  # type: ignore[arg-type]
        reasoning, answer = _extra(resp.choices[0].message).get("reasoning_content"), resp.choices[0].message.content
    # The reasoning keeps the newline of the template's "<think>\n", as with the real model.
    assert (reasoning.strip() if reasoning else reasoning, answer) == ("ab", "cd")
    line = _line(gw)
    assert line["finish_reason"] == "stop" and line["empty_response"] is False
    assert 0 < line["reasoning_tokens"] < line["completion_tokens"]
    assert line["answer_tokens"] == line["completion_tokens"] - line["reasoning_tokens"]
    if stream:
        assert 0 < line["ttft_ms"] <= line["time_to_answer_ms"] < line["duration_ms"]


def _over_long(gw: Any, stream: bool = False) -> tuple[openai.BadRequestError, dict[str, Any]]:
    """A 600-token prompt against the tiny server's 256-token slots: llama.cpp answers 400 before any stream."""
    with pytest.raises(openai.BadRequestError) as caught:
        _client(gw).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "word " * 600}],
            max_tokens=4,
            stream=stream,
        )  # type: ignore[call-overload]
    return caught.value, _line(gw)


@pytest.mark.parametrize("stream", [False, True])
def test_over_long_prompt_is_a_clear_400_and_logged(start_gateway: StartGateway, llama_url: str, stream: bool) -> None:
    gw = start_gateway(llama_url)
    error, line = _over_long(gw, stream)
    assert error.status_code == 400 and "context" in str(error.message)
    assert line["status"] == 400 and "context" in (line["error_message"] or "")


def test_over_long_prompt_is_logged_as_context_length(start_gateway: StartGateway, llama_url: str) -> None:
    gw = start_gateway(llama_url)
    _, line = _over_long(gw)
    assert line["error_type"] == "context_length"


@pytest.mark.parametrize("stream", [False, True])
def test_llamacpp_timings_are_logged(start_gateway: StartGateway, llama_url: str, stream: bool) -> None:
    gw = start_gateway(llama_url)
    _client(gw).chat.completions.create(model=MODEL, messages=ASK, max_tokens=4, stream=stream)  # type: ignore[call-overload]
    line = _line(gw)
    assert line["llamacpp_prompt_per_token_ms"] > 0 and line["llamacpp_predicted_per_token_ms"] > 0


def test_metrics_capture_matches_the_built_server(llama_url: str) -> None:
    """The committed capture (what dashboards and rules are checked against) is what this llama-server exposes."""
    assert series_names(httpx.get(llama_url + "/metrics").text) == capture_names()


def test_kpi_driver_measures_through_the_gateway(tmp_path: Path) -> None:
    """bench/engine_kpis.py end to end on the tiny model (numbers meaningless): one row per concurrency, logged."""
    out = tmp_path / "kpis"
    args = [
        sys.executable, str(REPO / "bench" / "engine_kpis.py"), "--model", str(tiny_model()), "--label", "smoke",
        "--streams", "1,2", "--rounds", "1", "--max-tokens", "4", "--threads", "2", "--direct", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((out / "kpis.json").read_text())
    assert [row["streams"] for row in result["rows"]] == [1, 2] and result["peak_rss_bytes"] > 0
    for row in result["rows"]:
        assert row["completion_tokens"] == 4 and row["aggregate_tok_s"] > 0 and row["direct"]["requests"]
    assert len((out / "access.log").read_text().splitlines()) == 1 + 1 + 2, "warm-up + one per stream, all logged"
    assert "| 2 |" in done.stdout


def test_client_closing_at_done_is_not_a_disconnect(start_gateway: StartGateway, fake_vllm: str) -> None:
    """The openai SDK closes the connection as soon as it reads `data: [DONE]`. llama.cpp's server can end its HTTP
    body a moment after that event (seen: 1 run in 15 of this module logged status 499); the fake upstream waits 1 s,
    so the race always goes the same way. The client got the whole answer: that is a 200, not a disconnect."""
    gw = start_gateway(fake_vllm, "--forward-header", "X-Fake")
    chunks = list(
        _client(gw).chat.completions.create(
            model=MODEL, messages=ASK, stream=True, extra_headers={"X-Fake": "late-eof"}
        )
    )  # type: ignore[arg-type]
    assert chunks
    line = _line(gw)
    assert line["status"] == 200 and line["error_type"] is None


def _rendered_llama_server(tmp_path: Path, profile: str, service: str) -> tuple[list[str], list[str]]:
    """The service's llama-server argv as the compose binary renders it (entrypoint, if compose sets one, then
    command), and the same argv with only the model path, host, port and thread count swapped for this machine."""
    env = tmp_path / ".env"
    env.write_text(filled_env_text())
    result = compose(env, "config", "--format", "json", profiles=(profile,))
    assert result.returncode == 0, result.stderr
    rendered = json.loads(result.stdout)["services"][service]
    entrypoint = list(rendered.get("entrypoint") or ["/app/llama-server"])
    # The llama.cpp images' entrypoint (.devops/{cpu,cuda}.Dockerfile at the pinned release): the binary built here.
    assert entrypoint[0] == "/app/llama-server", entrypoint
    argv = [*entrypoint[1:], *rendered["command"]]
    local = {"--model": str(tiny_model()), "--host": "127.0.0.1", "--port": str(free_port()), "--threads": "2"}
    args = [local.get(argv[i - 1], arg) if i else arg for i, arg in enumerate(argv)]
    assert args != argv and {"--kv-unified-per-slot", "--cache-ram", "--metrics", "--jinja"} <= set(args)
    return argv, args


def _serves_the_model(args: list[str], log: Path) -> None:
    url = f"http://127.0.0.1:{args[args.index('--port') + 1]}"
    with running([str(llama_binary("llama-server")), *args], log, url + "/health"):
        models = httpx.get(url + "/v1/models").json()["data"]
        assert [m["id"] for m in models] == [MODEL], "--alias names the model for the gateway's labels"


def test_the_cpu_profiles_command_is_what_this_llama_server_accepts(tmp_path: Path) -> None:
    """The `llama` service's flags, as the compose binary renders them, run on the llama-server built from the same
    release as the pinned image: llama.cpp's own argument parser is the judge (only paths and ports are swapped)."""
    argv, args = _rendered_llama_server(tmp_path, "cpu", "llama")
    assert not {"--n-gpu-layers", "-ngl", "--gpu-layers"} & set(argv), "the CPU engine offloads nothing"
    _serves_the_model(args, tmp_path / "llama.log")


def test_the_gpu_q4_profiles_command_is_what_this_llama_server_accepts(tmp_path: Path) -> None:
    """`llama-gpu` (gpu-q4): the same flags plus `--n-gpu-layers all`, run on the llama-server built here. It has no
    CUDA, so llama.cpp's parser takes the flag and says it will be ignored (common/arg.cpp, the -ngl option's
    handler): that line proves the flag parsed as the GPU-layers option, and the server still serves."""
    argv, args = _rendered_llama_server(tmp_path, "gpu-q4", "llama-gpu")
    assert argv[argv.index("--n-gpu-layers") + 1] == "all", "every layer on the GPU"
    log = tmp_path / "llama-gpu.log"
    _serves_the_model(args, log)
    assert "no usable GPU found, --gpu-layers option will be ignored" in log.read_text()
