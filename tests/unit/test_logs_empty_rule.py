"""The Logstash tag and the Kibana rule for empty responses stay quiet on tool-call answers and fire on thought-only
ones: real gateway lines (accounting -> outcome -> log line, fed vLLM's chunks) through the pipeline's own condition
and the rule's own query."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmwatch.gateway.accounting import CompletionAccounting
from llmwatch.gateway.facts import RequestFacts
from llmwatch.gateway.log_line import log_line
from llmwatch.gateway.outcome import outcome
from llmwatch.gateway.sse import SSEScanner
from tests.support import REPO
from tests.support.logs import LOGSTASH_DIR, condition_guarding, holds, parse_pipeline
from tests.support.vllm_chunks import r1_stream, tool_stream

pytestmark = pytest.mark.unit

RULE = json.loads((REPO / "kibana/rules/empty-responses.json").read_text())


def _line(stream: bytes) -> dict[str, Any]:
    facts = RequestFacts("POST", "/v1/chat/completions", 0.0, 1.8e9)
    facts.request_id, facts.model, facts.kind, facts.stream, facts.status = "r", "m", "chat", True, 200
    facts.acct = CompletionAccounting()
    scanner = SSEScanner(facts.acct.on_chunk, strip_usage=False)
    scanner.feed(stream, 0.5)
    facts.acct.finish()
    return log_line(outcome(facts, 1.0, False), 0)


def _tagged(line: dict[str, Any]) -> dict[str, Any]:
    condition = condition_guarding(parse_pipeline(LOGSTASH_DIR / "pipeline/llm_gateway.conf"), "tag_empty_response")
    return {**line, "tags": ["empty_response"] if holds(condition, line) else []}


def _rule_matches(doc: dict[str, Any]) -> bool:
    """The rule's bool query of term clauses (filter and must_not), as Elasticsearch evaluates terms on keywords."""
    query = json.loads(RULE["params"]["esQuery"])["query"]["bool"]

    def term(clause: dict[str, Any]) -> bool:
        ((field, value),) = clause["term"].items()
        have = doc.get(field)
        return value in have if isinstance(have, list) else have == value

    return all(term(c) for c in query.get("filter", [])) and not any(term(c) for c in query.get("must_not", []))


def test_a_run_of_tool_call_answers_is_not_tagged_and_the_kibana_rule_stays_quiet() -> None:
    runs = [
        tool_stream([], [("get_weather", ['{"city": "Paris"}'])]),  # content null, finish_reason tool_calls
        tool_stream(["Let me", " check"], [("get_weather", ["{}"]), ("get_time", ["{}"])]),  # reasoning, then calls
        tool_stream([], [("f", ["{}"])], content=["Calling it."]),
    ]
    for stream in runs:
        line = _line(stream)
        assert (line["answer_kind"], line["empty_response"]) == ("tool_calls", False)
        doc = _tagged(line)
        assert doc["tags"] == [] and not _rule_matches(doc)


def test_thought_only_answers_are_tagged_and_match_the_rule() -> None:
    line = _line(r1_stream(["still", " thinking"], [], finish="length"))
    assert (line["answer_kind"], line["empty_response"]) == ("reasoning_only", True)
    doc = _tagged(line)
    assert doc["tags"] == ["empty_response"] and _rule_matches(doc)
    assert not _rule_matches({**doc, "kind": "warmup"})
