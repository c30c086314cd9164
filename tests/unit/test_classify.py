"""Which requests are Open WebUI's background tasks, from the prompts Open WebUI 0.12.4 really sends."""

from __future__ import annotations

import pytest

from llmwatch.gateway.classify import request_kind

pytestmark = pytest.mark.unit


def _chat(text: str) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": text}]}


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("### Task:\nGenerate a concise title summarizing the chat history.\n### Guidelines: ...", "task"),
        ("### Task:\nGenerate 1-3 broad tags categorizing the main themes of the chat history, ...", "task"),
        ("### Task:\nPredict 3-5 useful messages this user might naturally send next ...", "task"),
        ("### Task:\nAnalyze the chat history to determine the necessity of generating search queries, ...", "task"),
        # The RAG template wraps the user's own question: still a chat.
        ("### Task:\nRespond to the user query using the provided context, ...\n<context>...</context>\nWhy?", "chat"),
        ("Why is the sky blue?", "chat"),
        ("  ### Task:\nGenerate a concise title", "task"),
        ("Tell me about ### Task: markers", "chat"),
    ],
)
def test_open_webui_prompts(text: str, kind: str) -> None:
    assert request_kind(_chat(text), None) == kind


def test_multimodal_parts_and_header_override() -> None:
    content = [{"type": "text", "text": "### Task:\nGenerate 1-3 broad tags"}, {"type": "image_url", "image_url": {}}]
    parts = {"model": "m", "messages": [{"role": "user", "content": content}]}
    assert request_kind(parts, None) == "task"
    assert request_kind(parts, b"chat") == "chat"
    assert request_kind(_chat("hello"), b"Task") == "task"
    assert request_kind({"model": "m", "prompt": "### Task:\nGenerate a title"}, None) == "task"
    assert request_kind({"model": "m"}, None) == "chat"
