"""One error table: the schema enum, the docs and the metrics follow services/llmwatch/gateway/errors.py."""

from __future__ import annotations

import json
import re
from typing import get_args

import pytest

from llmwatch.gateway.errors import ERRORS, ErrorTypeName, GatewayError, engine_error_type
from llmwatch.gateway.facts import RequestFacts
from tests.support import REPO

pytestmark = pytest.mark.unit

SCHEMA = json.loads((REPO / "services/llmwatch/gateway/access-log.schema.json").read_text())


def test_schema_enum_is_the_table() -> None:
    assert SCHEMA["properties"]["error_type"]["enum"] == [None, *ERRORS]


def test_the_typed_names_are_the_table() -> None:
    """ErrorTypeName is what mypy checks callers against; it names exactly the table's rows, in its order."""
    assert get_args(ErrorTypeName) == tuple(ERRORS)


@pytest.mark.parametrize("name", list(ERRORS))
def test_the_status_comes_from_the_table(name: ErrorTypeName) -> None:
    facts = RequestFacts("POST", "/v1/chat/completions", 0.0, 0.0)
    facts.fail(name, "why")
    assert facts.status == GatewayError(name, "why").status == ERRORS[name].status


def test_every_type_is_documented_once_in_the_gateway_docs() -> None:
    doc = (REPO / "docs/gateway.md").read_text()
    table = doc[doc.index("## Errors") :]
    for name in ERRORS:
        assert re.search(rf"^\| [^|]*`{name}`", table, re.M), f"docs/gateway.md's error table lacks `{name}`"


def test_only_failures_of_the_engine_link_count_as_upstream_errors() -> None:
    upstream = {name for name, e in ERRORS.items() if e.upstream_failure}
    assert upstream == {name for name in ERRORS if name.startswith("upstream")} | {"engine_auth", "engine_overloaded"}


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        # vllm/renderers/params.py (0.33): the prompt plus max_tokens over max_model_len
        (400, "You passed 5000 input tokens and requested 100 output tokens. However, the model's context length is "
              "only 4096 tokens, resulting in a maximum input length of 3996 tokens.", "context_length"),
        (400, "max_tokens=9000cannot be greater than max_model_len=max_total_tokens=4096.", "context_length"),
        # llama.cpp (tools/server/server-context.cpp, exceed_context_size_error)
        (400, "request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it",
         "context_length"),
        (404, "The model `gpt-9` does not exist.", "model_not_found"),
        (400, "max_tokens must be at least 1, got 0.", "engine_rejected"),
        (422, None, "engine_rejected"),
        (401, "Unauthorized", "engine_auth"),
        (429, "queue full", "engine_overloaded"),
        (503, "overloaded", "upstream_error"),
    ],
)  # fmt: skip
def test_engine_answers_get_a_type_that_says_why(status: int, message: str | None, expected: str) -> None:
    assert engine_error_type(status, message) == expected


def test_kibanas_errors_search_finds_every_row() -> None:
    """The saved search *LLM gateway: errors* asks for `status >= 400`: every error type is logged with one."""
    search = next(
        json.loads(line)
        for line in (REPO / "kibana/saved-objects/llm-gateway.ndjson").read_text().splitlines()
        if '"llmwatch-gw-errors"' in line
    )
    query = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]
    assert query == "status >= 400"
    assert all(e.status >= 400 for e in ERRORS.values())
