"""What a generation request is and who sent it, read from the parsed body and headers.

`task` marks Open WebUI's background generations (chat title, tags, follow-ups, search queries, autocomplete):
their prompts are built from templates that all begin with "### Task:". They are told apart so that they do not
pollute user-facing latency SLOs. One template with that opening wraps a real user question: the RAG template
("Respond to the user query using the provided context ...") put in front of a chat with files or web search, so
it stays `chat`. A client can also say so with the header `X-Llmwatch-Kind: task|chat`.
"""

from __future__ import annotations

from typing import Any

TASK_MARKER = "### Task:"
JSON_FORMATS = ("json_object", "json_schema")
# Open WebUI's RAG_TEMPLATE: a user's own question under a "### Task:" heading (docs/open-webui.md).
USER_QUERY_TASKS = ("Respond to the user query",)


def request_kind(body: dict[str, Any], kind_header: bytes | None) -> str:
    if kind_header is not None:
        declared = kind_header.decode("latin-1").strip().lower()
        if declared in ("chat", "task"):
            return declared
    text = last_user_text(body)
    if text is None:
        return "chat"
    text = text.lstrip()
    if not text.startswith(TASK_MARKER):
        return "chat"
    return "chat" if text[len(TASK_MARKER) :].lstrip().startswith(USER_QUERY_TASKS) else "task"


def last_user_text(body: dict[str, Any]) -> str | None:
    """The last user message's text (chat), or the prompt (completions)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _text_of(message.get("content"))
        return None
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
        return prompt[0]
    return None


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: keep the text ones
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(parts)
    return None


def offers_tools(body: dict[str, Any]) -> bool:
    """The request offers the model at least one tool (a non-empty `tools` list), whatever its `tool_choice`."""
    tools = body.get("tools")
    return isinstance(tools, list) and len(tools) > 0


def json_format(body: dict[str, Any]) -> str | None:
    """`json_object` or `json_schema` when the client asked for a JSON answer (`response_format.type`), else None."""
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    return kind if kind in JSON_FORMATS else None
