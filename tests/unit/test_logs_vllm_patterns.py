"""The llm_stack grok patterns, exactly as Logstash loads them, applied in Python to real-format vLLM and Open WebUI
container logs (tests/fixtures/vllm-logs, Docker json-file format).

The steps mirror the pipeline, each read from its file: Filebeat's multiline pattern (filebeat.yml) joins the lines,
the llm_stack.conf gsub/strip normalise the message, then its grok filters run in order, patterns from
logstash/patterns/llm_stack translated mechanically to Python regexes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.logs import (
    FIXTURES,
    LOGSTASH_DIR,
    compile_grok,
    container_events,
    grok_filters,
    load_patterns,
    load_pipeline,
    logstash_settings,
    logstash_string,
    raw_option_strings,
    ruby_gsub,
)

pytestmark = pytest.mark.unit

STACK_CONF = LOGSTASH_DIR / "pipeline/llm_stack.conf"
STACK = load_pipeline(STACK_CONF)
GROKS = grok_filters(STACK)


def normalise(message: str, support_escapes: bool | None = None) -> str:
    """llm_stack.conf's gsub and strip, with Logstash's string rules and config.support_escapes as configured."""
    if support_escapes is None:
        support_escapes = logstash_settings().get("config.support_escapes", False) is True
    for plugin in STACK.plugins:
        if "gsub" in plugin.options:
            raw = raw_option_strings(STACK_CONF, plugin.options["id"], "gsub")
            gsub = [logstash_string(s, support_escapes) for s in raw]
            for i in range(0, len(gsub), 3):
                assert gsub[i] == "message"
                message = ruby_gsub(gsub[i + 1], gsub[i + 2], message)
        if "message" in plugin.options.get("strip", []):
            message = message.strip()
    return message


def grok(filter_id: str, text: str) -> dict[str, Any] | None:
    for pattern in GROKS[filter_id][1]:  # break_on_match: the first pattern that matches wins
        found = pattern.match(text)
        if found is not None:
            return found
    return None


def parse(message: str, support_escapes: bool | None = None) -> dict[str, Any]:
    """The llm_stack filter section for one event, as far as grok is concerned."""
    event: dict[str, Any] = {"message": normalise(message, support_escapes)}
    line = grok("stack_line", event["message"])
    event["parsed"] = line is not None
    event.update(line or {})
    if "@metadata.body" in event:
        event.update(grok("vllm_message", event["@metadata.body"]) or {})
    if "Traceback (most recent call last)" in event["message"]:
        event.update(grok("traceback_exception", event["message"]) or {})
    return event


@pytest.fixture(scope="module")
def vllm() -> list[dict[str, Any]]:
    return [parse(m) for m in container_events(FIXTURES / "vllm-container.log")]


@pytest.fixture(scope="module")
def webui() -> list[dict[str, Any]]:
    return [parse(m) for m in container_events(FIXTURES / "open-webui-container.log")]


def test_every_pattern_the_pipeline_uses_is_defined_and_translates() -> None:
    assert set(GROKS) == {"stack_line", "vllm_message", "traceback_exception"}
    patterns = load_patterns()
    for name in patterns:
        compile_grok(f"%{{{name}}}", patterns)


def test_multiline_joins_tracebacks_into_one_event(vllm: list[dict[str, Any]], webui: list[dict[str, Any]]) -> None:
    assert len(vllm) == 24 and len(webui) == 5
    tracebacks = [e for e in vllm + webui if "Traceback (most recent call last)" in e["message"]]
    assert len(tracebacks) == 4
    assert all(e["message"].count("\n") >= 3 and "\r" not in e["message"] for e in tracebacks)


def test_every_line_is_parsed(vllm: list[dict[str, Any]], webui: list[dict[str, Any]]) -> None:
    unparsed = [e["message"][:80] for e in vllm + webui if not e["parsed"]]
    assert unparsed == []
    assert {e["log.level"] for e in vllm} == {"INFO", "WARNING", "ERROR"}
    assert {e.get("vllm.process") for e in vllm} == {"APIServer", "EngineCore_DP0"}


def test_vllm_stats_lines_become_numbers(vllm: list[dict[str, Any]]) -> None:
    stats = [e for e in vllm if "vllm.stats.running" in e]
    assert len(stats) == len([e for e in vllm if "Avg prompt throughput" in e["message"]]) == 3
    first, busy, newest = stats
    assert first["log.origin.file.name"] == "loggers.py" and first["vllm.stats.engine"] == "000"
    assert (first["vllm.stats.avg_prompt_throughput"], first["vllm.stats.avg_generation_throughput"]) == (61.2, 412.7)
    assert (first["vllm.stats.running"], first["vllm.stats.waiting"]) == (2, 0)
    assert (first["vllm.stats.kv_cache_usage_pct"], first["vllm.stats.prefix_cache_hit_rate_pct"]) == (0.4, 0.0)
    assert "vllm.stats.preemptions" not in first
    assert (busy["vllm.stats.preemptions"], busy["vllm.stats.kv_cache_usage_pct"]) == (3, 97.9)
    assert (newest["vllm.stats.deferred"], newest["vllm.stats.preemptions"]) == (2, 1)
    assert newest["vllm.stats.external_prefix_cache_hit_rate_pct"] == 12.5
    # Independent reading: the numbers of each line, in order, are the numbers grok produced.
    for event in stats:
        numbers = [float(n) for n in re.findall(r": ([0-9.]+)", event["@metadata.body"])]
        produced = [v for k, v in event.items() if k.startswith("vllm.stats.") and k != "vllm.stats.engine"]
        assert numbers == produced


def test_request_lifecycle_lines(vllm: list[dict[str, Any]]) -> None:
    requests = [(e["vllm.request.event"], e["vllm.request.id"].split(",")) for e in vllm if "vllm.request.event" in e]
    assert requests == [
        ("Added", ["chatcmpl-7d3c9a4e-2b1f-4c8a-9e6d-5f4a3b2c1d0e"]),
        ("Added", ["chatcmpl-0a1b2c3d4e5f40718293a4b5c6d7e8f9"]),
        ("Aborted", ["chatcmpl-7d3c9a4e-2b1f-4c8a-9e6d-5f4a3b2c1d0e", "chatcmpl-9b8a7c6d5e4f4a3b9c2d1e0f9a8b7c6d"]),
        ("Aborted", ["chatcmpl-3c2b1a0f9e8d4c7b8a6f5e4d3c2b1a0f"]),
    ]


def test_uvicorn_access_lines(vllm: list[dict[str, Any]]) -> None:
    access = [e for e in vllm if "http.response.status_code" in e]
    assert [(e["http.request.method"], e["url.original"], e["http.response.status_code"]) for e in access] == [
        ("GET", "/health", 200),
        ("POST", "/v1/chat/completions", 200),
        ("POST", "/v1/chat/completions", 500),
    ]
    assert access[1]["source.address"] == "172.18.0.7" and access[1]["source.port"] == 41234


def test_tracebacks_yield_the_exception(vllm: list[dict[str, Any]], webui: list[dict[str, Any]]) -> None:
    errors = [(e["error.type"], e["error.message"]) for e in vllm + webui if "error.type" in e]
    assert [t for t, _ in errors] == [
        "torch.OutOfMemoryError",
        "vllm.v1.engine.exceptions.EngineDeadError",
        "vllm.v1.engine.exceptions.EngineDeadError",
        "aiohttp.client_exceptions.ClientResponseError",
    ]
    assert errors[0][1].startswith("CUDA out of memory. Tried to allocate 1.02 GiB.")
    assert errors[3][1] == "500, message='Internal Server Error', url='http://gateway:4000/v1/chat/completions'"
    # Only the exception line: the vLLM head in front of it is not part of the type.
    assert all("\n" not in m and "ERROR" not in m for _, m in errors)


def test_without_support_escapes_the_newlines_turn_into_backslash_n() -> None:
    """The shipped bug: without config.support_escapes, "\\n" in the gsub is a backslash and an n (lscl.rb), so
    every joined traceback became one line and PY_EXCEPTION found no exception type."""
    (traceback, *_) = [m for m in container_events(FIXTURES / "vllm-container.log") if "Traceback" in m]
    old = parse(traceback, support_escapes=False)
    assert "\\n" in old["message"] and "\n" not in old["message"] and "error.type" not in old
    assert parse(traceback)["error.type"] == "torch.OutOfMemoryError"
    assert logstash_settings()["config.support_escapes"] is True


def test_the_string_rules_follow_logstash() -> None:
    assert logstash_string(r"a\nb\tc\"d\\e\qf", support_escapes=True) == 'a\nb\tc"d\\e\\qf'
    assert logstash_string(r"a\nb", support_escapes=False) == r"a\nb"
    # Ruby keeps an unknown backslash pair in a gsub replacement; \\1 is the first group.
    assert ruby_gsub("x+", r"\n", "axxb") == r"a\nb" and ruby_gsub("(x+)", r"<\1>", "axxb") == "a<xx>b"


def test_open_webui_lines(webui: list[dict[str, Any]]) -> None:
    assert [e["log.level"] for e in webui] == ["INFO", "INFO", "INFO", "ERROR", "WARNING"]
    assert webui[1]["log.logger"] == "open_webui.main" and webui[1]["log.origin.function"] == "lifespan"
    assert webui[1]["log.origin.file.line"] == 553


def test_variants_the_fixtures_lack() -> None:
    aggregated = (
        "2 Engines Aggregated: Avg prompt throughput: 10.0 tokens/s, Avg generation throughput: 20.5 tokens/s, "
        "Running: 3 reqs, Waiting: 1 reqs, GPU KV cache usage: 5.0%, Prefix cache hit rate: 1.5%, "
        "Corrupted: 1 reqs, MM cache hit rate: 7.0%"
    )
    found = grok("vllm_message", aggregated)
    assert found is not None
    assert (found["vllm.stats.engines_aggregated"], found["vllm.stats.corrupted"]) == (2, 1)
    assert found["vllm.stats.mm_cache_hit_rate_pct"] == 7.0
    # A renamed label is not silently half-parsed.
    assert grok("vllm_message", aggregated.replace("GPU KV cache usage", "KV cache usage")) is None
    single = grok("vllm_message", "Aborted request cmpl-1.")
    assert single == {"vllm.request.event": "Aborted", "vllm.request.id": "cmpl-1"}
