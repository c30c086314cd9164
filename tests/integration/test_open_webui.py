"""The real Open WebUI, driven by headless Chromium, through the gateway to the simulator.

Checks what the gateway assumes about Open WebUI against the installed version (scripts/install-open-webui.sh):
the X-OpenWebUI-User-* headers give `user`, background generations are logged as `kind: task`, and the usage
chunk that `--always-return-usage` forwards is what makes Open WebUI show token usage under a reply.

Open WebUI gets two connections to the same simulator: `with_usage` (gateway with --always-return-usage, models
under their own id) and `plain` (gateway without it, models under the `plain.` prefix), so one browser session can
compare both.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.support import REPO, Samples, free_port, need_binary, running, scrape, total, wait_until

pytestmark = pytest.mark.integration

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
PLAIN_PREFIX = "plain"
API_KEY = "sk-llmwatch-open-webui-test"
# WEBUI_AUTH=false signs everyone in as this admin (open_webui/routers/auths.py: name "User", admin@localhost).
DEFAULT_USER = "User"
# The background generations Open WebUI 0.12.4 sends by default after a first reply (open_webui/config.py templates).
TASK_PROMPTS = {
    "title": "### Task:\nGenerate a concise title summarizing the chat history.",
    "tags": "### Task:\nGenerate 1-3 broad tags categorizing the main themes",
    "follow-ups": "### Task:\nPredict 3-5 useful messages this user might naturally send next",
}

CACHE = Path(os.environ.get("LLMWATCH_CACHE") or Path.home() / ".cache" / "llmwatch")
OPEN_WEBUI = CACHE / "open-webui-venv" / "bin" / "open-webui"
NODE_MODULES = CACHE / "e2e-node" / "node_modules"
CHAT_SCRIPT = REPO / "tests" / "e2e" / "chat.mjs"

if not OPEN_WEBUI.exists():
    pytest.skip(
        f"Open WebUI is not installed ({OPEN_WEBUI} missing): run scripts/install-open-webui.sh",
        allow_module_level=True,
    )


@contextlib.contextmanager
def open_webui(tmp_path: Path, with_usage: Gateway, plain: Gateway) -> Iterator[str]:
    """A running Open WebUI (offline, throw-away data dir) with one OpenAI connection per gateway; its URL."""
    port = free_port()
    env = {
        "DATA_DIR": str(tmp_path / "open-webui-data"),
        "WEBUI_AUTH": "false",
        "WEBUI_SECRET_KEY": "llmwatch-test-secret",
        "ENABLE_OLLAMA_API": "false",
        "OPENAI_API_BASE_URL": f"{with_usage.url}/v1",
        "OPENAI_API_BASE_URLS": f"{with_usage.url}/v1;{plain.url}/v1",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_API_KEYS": f"{API_KEY};{API_KEY}",
        "OPENAI_API_CONFIGS": json.dumps({"1": {"prefix_id": PLAIN_PREFIX}}),
        "DEFAULT_MODELS": MODEL,
        "ENABLE_FORWARD_USER_INFO_HEADERS": "true",
        # Nothing from the internet: no hub downloads, no update check, no embedding model at startup; attached
        # files go into the prompt whole instead of through an embedding model.
        "OFFLINE_MODE": "true",
        "HF_HUB_OFFLINE": "1",
        "ENABLE_VERSION_UPDATE_CHECK": "false",
        "RAG_EMBEDDING_ENGINE": "openai",
        "BYPASS_EMBEDDING_AND_RETRIEVAL": "true",
    }
    args = [str(OPEN_WEBUI), "serve", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running(args, tmp_path / "open-webui.log", f"{url}/health", env=env, timeout=120):
        yield url


def start_gateways(start_gateway: GatewayFactory, sim_url: str, tmp_path: Path) -> tuple[Gateway, Gateway]:
    """Two gateways in front of the simulator, with and without --always-return-usage, logging content."""
    keys = tmp_path / "api-keys"
    keys.write_text(f"open-webui={API_KEY}\n")
    content = ("--api-keys", str(keys), "--log-content", "--log-content-max-chars", "20000")
    return start_gateway(sim_url, "--always-return-usage", *content), start_gateway(sim_url, *content)


def browser_chat(ui_url: str, model: str, message: str, screenshot: Path) -> dict[str, Any]:
    """Run tests/e2e/chat.mjs for one chat turn; its JSON report."""
    node = need_binary("node")
    need_binary("chromium")
    if not (NODE_MODULES / "playwright-core").is_dir():
        raise AssertionError(f"playwright-core missing in {NODE_MODULES}: run scripts/install-open-webui.sh")
    args = [node, str(CHAT_SCRIPT), "--url", ui_url, "--model", model, "--message", message,
            "--screenshot", str(screenshot), "--timeout-ms", "45000"]  # fmt: skip
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    lines = done.stdout.strip().splitlines()
    assert lines, f"chat.mjs printed nothing (rc {done.returncode}):\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    assert done.returncode == 0 and "error" not in report, f"browser step failed ({screenshot}): {report}"
    return report


def generations(gateway: Gateway) -> list[dict[str, Any]]:
    return [line for line in gateway.lines() if line["path"] == "/v1/chat/completions"]


def logged_prompt(gateway: Gateway, head: str) -> dict[str, Any] | None:
    """The first generation whose logged prompt starts with ``head``."""
    return next((line for line in generations(gateway) if line.get("prompt", "").startswith(head)), None)


def task_name(prompt: str) -> str:
    """Which default task a prompt belongs to; the prompt itself when it is none of them."""
    return next((task for task, head in TASK_PROMPTS.items() if prompt.startswith(head)), prompt)


def usage_numbers(text: str) -> dict[str, int]:
    """`prompt_tokens: 12` lines of Open WebUI's usage tooltip, as a dict."""
    return {key: int(value) for key, value in re.findall(r"^\s*(\w+_tokens): (\d+)$", text, re.MULTILINE)}


def words(text: str) -> str:
    return " ".join(text.split())


def test_chat_through_open_webui(sim_url: str, start_gateway: GatewayFactory, tmp_path: Path) -> None:
    with_usage, plain = start_gateways(start_gateway, sim_url, tmp_path)
    with open_webui(tmp_path, with_usage, plain) as ui:
        question = "Why is the sky blue at noon"
        shown = browser_chat(ui, MODEL, question, tmp_path / "with-usage.png")
        hidden = browser_chat(ui, f"{PLAIN_PREFIX}.{MODEL}", "How do tides work", tmp_path / "plain.png")

        # Title generation runs alongside the reply, tags and follow-ups after it: wait for all three on both
        # connections, so that nothing is in flight when Open WebUI stops.
        for gateway in (with_usage, plain):
            for task, head in TASK_PROMPTS.items():
                wait_until(partial(logged_prompt, gateway, head), 60, f"the {task} generation at {gateway.url}")

    # The browser shows the simulator's reply: reasoning collapsed, then the answer the gateway logged.
    chat_lines = [line for line in generations(with_usage) if line["kind"] == "chat"]
    assert len(chat_lines) == 1, chat_lines
    chat = chat_lines[0]
    assert (shown["selected_model"], hidden["selected_model"]) == (MODEL, f"{PLAIN_PREFIX}.{MODEL}")
    assert shown["reasoning_present"] and not shown["reasoning_expanded"], shown
    assert shown["reasoning_label"].startswith("Thought"), shown
    assert words(shown["answer_text"]) == words(chat["completion"]), (shown["answer_text"], chat["completion"])
    # The simulator's answers open with the question's words: this text was not made up by the UI.
    assert words(shown["answer_text"]).startswith(f"Here is a short answer to {question.lower()}."), shown

    # The access-log line of that request.
    assert chat["prompt"] == question
    assert (chat["model"], chat["stream"], chat["status"], chat["user"]) == (MODEL, True, 200, DEFAULT_USER), chat
    assert chat["error_type"] is None and chat["finish_reason"] == "stop", chat
    assert chat["completion_tokens"] == chat["reasoning_tokens"] + chat["answer_tokens"], chat
    assert chat["reasoning_tokens"] > 0 and chat["answer_tokens"] > 0, chat

    # Usage under the reply: shown with --always-return-usage, and the numbers are the gateway's exact counts.
    assert shown["usage_shown"] and shown["info_button"], shown
    ui_usage = usage_numbers(shown["usage_text"])
    assert ui_usage["prompt_tokens"] == chat["prompt_tokens"], (ui_usage, chat)
    assert ui_usage["completion_tokens"] == chat["completion_tokens"], (ui_usage, chat)
    assert ui_usage["total_tokens"] == chat["total_tokens"], (ui_usage, chat)
    assert str(chat["completion_tokens"]) in shown["usage_tooltip"], shown
    # Without the flag Open WebUI (which sends no stream_options by default) gets no usage and shows none,
    # while the gateway still counted the tokens through the include_usage it injected.
    assert not hidden["usage_shown"] and not hidden["info_button"], hidden
    plain_chat = [line for line in generations(plain) if line["kind"] == "chat"]
    assert len(plain_chat) == 1 and plain_chat[0]["completion_tokens"], plain_chat
    assert hidden["answer_text"] and words(hidden["answer_text"]) == words(plain_chat[0]["completion"]), hidden

    # Background generations: every "### Task:" prompt is logged as a task, never as chat, with the same user;
    # each connection saw exactly one chat and one of each default task.
    for gateway in (with_usage, plain):
        seen = []
        for line in generations(gateway):
            assert (line["kind"] == "task") == line["prompt"].lstrip().startswith("### Task:"), line
            assert line["user"] == DEFAULT_USER and line["status"] == 200 and line["model"] == MODEL, line
            assert line["stream"] is (line["kind"] == "chat"), line
            seen.append(task_name(line["prompt"]) if line["kind"] == "task" else "chat")
        assert sorted(seen) == sorted(["chat", *TASK_PROMPTS]), seen

    # Exact tokens end to end: once the engine has finished every request the gateways logged, their token sums
    # are the engine's own counters.
    logged = generations(with_usage) + generations(plain)

    def engine_done() -> Samples | None:
        samples = scrape(sim_url + "/metrics")
        return samples if total(samples, "vllm:request_success_total") == len(logged) else None

    engine = wait_until(engine_done, 10, f"the simulator to count {len(logged)} finished requests")
    assert total(engine, "vllm:prompt_tokens_total") == sum(line["prompt_tokens"] for line in logged)
    assert total(engine, "vllm:generation_tokens_total") == sum(line["completion_tokens"] for line in logged)


class KindMismatch(AssertionError):
    """The one expected failure below; any other assertion error is a real failure."""


def test_chat_with_attached_file_is_chat(sim_url: str, start_gateway: GatewayFactory, tmp_path: Path) -> None:
    with_usage, plain = start_gateways(start_gateway, sim_url, tmp_path)
    question = "Which port does the gateway listen on"
    with open_webui(tmp_path, with_usage, plain) as ui, httpx.Client(base_url=ui, timeout=30) as client:
        # Open WebUI's own HTTP API: sign in (WEBUI_AUTH=false takes any credentials), upload a file, chat with it.
        token = client.post("/api/v1/auths/signin", json={"email": "", "password": ""}).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        upload = client.post(
            "/api/v1/files/", params={"process": "true"}, files={"file": ("notes.txt", b"port 4000\n")}
        )
        file_id = upload.raise_for_status().json()["id"]
        wait_until(
            lambda: client.get(f"/api/v1/files/{file_id}/process/status").json().get("status") == "completed",
            20,
            "Open WebUI to process the uploaded file",
        )
        body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": question}],
                "files": [{"type": "file", "id": file_id}]}  # fmt: skip
        with client.stream("POST", "/api/chat/completions", json=body) as reply:
            assert reply.status_code == 200, reply.read()
            reply.read()
        line = wait_until(
            lambda: next((x for x in generations(with_usage) if x["stream"] and x["prompt"].endswith(question)), None),
            20,
            "the streamed chat with the attached file in the access log",
        )
    assert line["status"] == 200 and line["user"] == DEFAULT_USER, line
    assert line["prompt"].startswith("### Task:\nRespond to the user query using the provided context"), line
    if line["kind"] != "chat":
        raise KindMismatch(f"a user's chat with an attached file was logged as kind={line['kind']!r}")
