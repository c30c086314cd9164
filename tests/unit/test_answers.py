"""The one definition of an answer (llmwatch.answers), and that the gateway and the load test both use it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from llmwatch.answers import ANSWER_KINDS, answer_kind, is_empty
from tests.support import REPO

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("has_text", "tool_calls", "reasoning", "completion", "kind"),
    [
        (True, 0, True, 40, "text"),
        (True, 0, False, None, "text"),
        (False, 1, True, 20, "tool_calls"),  # content null, a tool call: an answer
        (True, 2, False, 30, "tool_calls"),  # text and tool calls: still a tool-call answer
        (False, 0, True, 512, "reasoning_only"),  # thought and never answered (max_tokens inside <think>)
        (False, 0, False, 3, "empty"),
        (False, 0, False, None, "empty"),
        (True, 1, True, 0, "empty"),  # the engine counted nothing generated
    ],
)
def test_answer_kind(has_text: bool, tool_calls: int, reasoning: bool, completion: int | None, kind: str) -> None:
    assert answer_kind(has_text, tool_calls, reasoning, completion) == kind


def test_empty_means_no_text_and_no_tool_call() -> None:
    assert [k for k in ANSWER_KINDS if is_empty(k)] == ["reasoning_only", "empty"]
    assert [k for k in ANSWER_KINDS if is_empty(k, accept_reasoning_only=True)] == ["empty"]


def _imports_answers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "llmwatch.answers"
        for alias in node.names
    }


@pytest.mark.parametrize(
    ("path", "names"),
    [
        ("services/llmwatch/gateway/accounting.py", {"answer_kind"}),
        ("services/llmwatch/gateway/outcome.py", {"is_empty"}),
        ("loadtest/stream.py", {"answer_kind"}),
        ("loadtest/locustfile.py", {"is_empty"}),
    ],
)
def test_gateway_and_load_test_use_the_one_rule(path: str, names: set[str]) -> None:
    assert names <= _imports_answers(REPO / path)
