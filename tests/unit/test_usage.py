"""The engine's `usage` and `finish_reason` are checked before anything counts them; API keys and their flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmwatch.gateway.accounting import CompletionAccounting
from llmwatch.gateway.auth import ApiKey, KeyRing, load_api_keys, parse_api_keys
from llmwatch.gateway.usage import checked_finish_reason, checked_usage

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("usage", "kept", "anomalies"),
    [
        ({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}, {"prompt_tokens": 3, "completion_tokens": 2,
                                                                          "total_tokens": 5}, []),
        ("x", None, ["usage"]),
        ([1, 2], None, ["usage"]),
        ({"prompt_tokens": 3, "completion_tokens": -5}, {"prompt_tokens": 3}, ["usage.completion_tokens"]),
        ({"prompt_tokens": True, "completion_tokens": 2.0}, {}, ["usage.prompt_tokens", "usage.completion_tokens"]),
        ({"completion_tokens": 4, "completion_tokens_details": {"reasoning_tokens": "3"}}, {"completion_tokens": 4},
         ["usage.completion_tokens_details.reasoning_tokens"]),
        ({"completion_tokens_details": [1]}, {}, ["usage.completion_tokens_details"]),
        (None, None, []),
    ],
)  # fmt: skip
def test_only_valid_counts_are_kept(usage: Any, kept: Any, anomalies: list[str]) -> None:
    seen: list[str] = []
    assert checked_usage(usage, seen) == kept
    assert seen == anomalies


def test_finish_reason_must_be_a_string() -> None:
    seen: list[str] = []
    assert checked_finish_reason("stop", seen) == "stop" and checked_finish_reason(None, seen) is None
    assert checked_finish_reason(7, seen) is None and seen == ["finish_reason"]


def test_a_non_object_usage_in_a_whole_answer_never_raises() -> None:
    acct = CompletionAccounting()
    acct.on_response({"usage": "x", "choices": [{"message": {"content": "4"}, "finish_reason": ["stop"]}]})
    assert acct.token_counts(False) == (None, None, None, None)
    assert acct.finish_reason is None and acct.anomalies == ["usage", "finish_reason"]


def test_keys_file_flags_mark_trusted_forwarders(tmp_path: Path) -> None:
    keys = parse_api_keys("# name=key [forward-user]\nalice=sk-a\n\nopen-webui = sk-o  forward-user\n", "keys")
    assert keys == {"sk-a": ApiKey("alice"), "sk-o": ApiKey("open-webui", forward_user=True)}
    ring = KeyRing(keys)
    assert ring.find(b"Bearer sk-o") == ApiKey("open-webui", True) and ring.find(b"Bearer sk-o forward-user") is None
    path = tmp_path / "keys"
    path.write_text("alice=sk-a\n")
    assert load_api_keys(path) == {"sk-a": ApiKey("alice")}, "today's files read as before"


@pytest.mark.parametrize(
    ("text", "says"),
    [("alice\n", "expected `name=key`"), ("alice=\n", "expected `name=key`"), ("a=k admin\n", "unknown flag 'admin'"),
     ("# only a comment\n", "no keys found")],
)  # fmt: skip
def test_a_bad_keys_file_names_the_line(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_api_keys(text, "keys")
