"""The real Open WebUI, driven by headless Chromium, through the gateway to the simulator.

Checks what the gateway assumes about Open WebUI against the installed version (scripts/install-open-webui.sh),
set up as docker-compose.yml ships it: Open WebUI with compose's DEFAULT_MODEL_METADATA (the `usage` capability on,
built-in tools off) and ENABLE_PERSISTENT_CONFIG=false, the gateway without --always-return-usage. A recording
proxy in front of the gateway shows what Open WebUI itself sent: it asks for usage (stream_options.include_usage)
and sends no `tools`, and the usage then shows under the reply with the gateway's exact counts. The
X-OpenWebUI-User-* headers give `user`, and background generations are logged as `kind: task`.

A second connection (models under the `always.` prefix) goes to a gateway with --always-return-usage; its model
has the `usage` capability turned off by a per-model override, so there the flag alone brings the usage.
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
import yaml

from tests.e2e.recording_proxy import RecordingProxy
from tests.support import (
    REPO,
    Gateway,
    GatewayFactory,
    Samples,
    free_port,
    need_binary,
    running,
    scrape,
    total,
    wait_until,
)
from tests.support.compose import OPEN_WEBUI_PERSISTENT

pytestmark = pytest.mark.integration

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
ALWAYS_MODEL = f"always.{MODEL}"
API_KEY = "sk-llmwatch-open-webui-test"
# WEBUI_AUTH=false signs everyone in as this admin (open_webui/routers/auths.py: name "User", admin@localhost).
DEFAULT_USER = "User"
# The background generations Open WebUI 0.12.4 sends by default after a first reply (open_webui/config.py templates).
TASK_PROMPTS = {
    "title": "### Task:\nGenerate a concise title summarizing the chat history.",
    "tags": "### Task:\nGenerate 1-3 broad tags categorizing the main themes",
    "follow-ups": "### Task:\nPredict 3-5 useful messages this user might naturally send next",
}
COMPLETIONS = "/v1/chat/completions"

CACHE = Path(os.environ.get("LLMWATCH_CACHE") or Path.home() / ".cache" / "llmwatch")
OPEN_WEBUI = CACHE / "open-webui-venv" / "bin" / "open-webui"
NODE_MODULES = CACHE / "e2e-node" / "node_modules"
CHAT_SCRIPT = REPO / "tests" / "e2e" / "chat.mjs"

if not OPEN_WEBUI.exists():
    pytest.skip(
        f"Open WebUI is not installed ({OPEN_WEBUI} missing): run scripts/install-open-webui.sh",
        allow_module_level=True,
    )


def compose_env(name: str) -> str:
    """One of Open WebUI's settings from docker-compose.yml, after checking compose's gateway has no flag."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert "--always-return-usage" not in services["gateway"]["command"], "compose changed: update this test"
    value: str = services["open-webui"]["environment"][name]
    return value


@contextlib.contextmanager
def open_webui(
    tmp_path: Path, *connections: str, key: str = API_KEY, overrides: dict[str, str] | None = None
) -> Iterator[str]:
    """A running Open WebUI (offline, throw-away data dir) with one OpenAI connection per base URL; its URL.

    The second connection's models appear under the `always.` prefix. ``overrides`` replace environment entries.
    """
    port = free_port()
    env = {
        "DATA_DIR": str(tmp_path / "open-webui-data"),
        "WEBUI_AUTH": "false",
        "WEBUI_SECRET_KEY": "llmwatch-test-secret",
        "ENABLE_OLLAMA_API": "false",
        "OPENAI_API_BASE_URL": f"{connections[0]}/v1",
        "OPENAI_API_BASE_URLS": ";".join(f"{url}/v1" for url in connections),
        "OPENAI_API_KEY": key,
        "OPENAI_API_KEYS": ";".join(key for _ in connections),
        "OPENAI_API_CONFIGS": json.dumps({"1": {"prefix_id": "always"}}),
        "DEFAULT_MODELS": MODEL,
        "DEFAULT_MODEL_METADATA": compose_env("DEFAULT_MODEL_METADATA"),
        # As compose ships it: the environment wins at every start, not the copy saved at the first one.
        "ENABLE_PERSISTENT_CONFIG": compose_env("ENABLE_PERSISTENT_CONFIG"),
        "ENABLE_FORWARD_USER_INFO_HEADERS": "true",
        # Nothing from the internet: no hub downloads, no update check, no embedding model at startup; attached
        # files go into the prompt whole instead of through an embedding model.
        "OFFLINE_MODE": "true",
        "HF_HUB_OFFLINE": "1",
        "ENABLE_VERSION_UPDATE_CHECK": "false",
        "RAG_EMBEDDING_ENGINE": "openai",
        "BYPASS_EMBEDDING_AND_RETRIEVAL": "true",
        **(overrides or {}),
    }
    args = [str(OPEN_WEBUI), "serve", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running(args, tmp_path / "open-webui.log", f"{url}/health", env=env, timeout=120):
        yield url


def start_gateway_for_ui(start_gateway: GatewayFactory, sim_url: str, tmp_path: Path, *flags: str) -> Gateway:
    """A gateway in front of the simulator that knows Open WebUI's key and logs content."""
    keys = tmp_path / "api-keys"
    keys.write_text(f"open-webui={API_KEY} forward-user\n")  # trusted to name its users
    return start_gateway(sim_url, "--api-keys", str(keys), "--log-content", "--log-content-max-chars", "20000", *flags)


@contextlib.contextmanager
def signed_in(ui_url: str) -> Iterator[httpx.Client]:
    """A client for Open WebUI's own HTTP API, signed in as the admin (WEBUI_AUTH=false takes any credentials)."""
    with httpx.Client(base_url=ui_url, timeout=30) as client:
        signin = client.post("/api/v1/auths/signin", json={"email": "", "password": ""})
        client.headers["Authorization"] = f"Bearer {signin.raise_for_status().json()['token']}"
        yield client


def capabilities(client: httpx.Client, model: str) -> dict[str, Any]:
    """The model's capabilities as Open WebUI resolved them (defaults merged with per-model overrides)."""
    models = client.get("/api/models").raise_for_status().json()["data"]
    found: dict[str, Any] = next(m for m in models if m["id"] == model)["info"]["meta"]["capabilities"]
    return found


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


def sent_chat(proxy: RecordingProxy, question: str) -> dict[str, Any]:
    """The one chat-completions body Open WebUI sent whose last message is ``question``."""
    bodies = [r.body for r in proxy.requests(COMPLETIONS) if r.body["messages"][-1]["content"] == question]
    assert len(bodies) == 1, [r.body for r in proxy.requests(COMPLETIONS)]
    body: dict[str, Any] = bodies[0]
    return body


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
    compose = start_gateway_for_ui(start_gateway, sim_url, tmp_path)
    always = start_gateway_for_ui(start_gateway, sim_url, tmp_path, "--always-return-usage")
    question, always_question = "Why is the sky blue at noon", "How do tides work"
    with (
        RecordingProxy(compose.url) as compose_wire,
        RecordingProxy(always.url) as always_wire,
        open_webui(tmp_path, compose_wire.url, always_wire.url) as ui,
        signed_in(ui) as client,
    ):
        # Open WebUI has per-model overrides (Workspace -> Models), not per-connection ones: turn `usage` off for the
        # `always.` model only. Its capabilities are compose's defaults merged under the override.
        override = {"id": ALWAYS_MODEL, "name": ALWAYS_MODEL, "meta": {"capabilities": {"usage": False}}, "params": {}}
        client.post("/api/v1/models/create", json=override).raise_for_status()
        assert capabilities(client, MODEL) == {"usage": True, "builtin_tools": False}
        assert capabilities(client, ALWAYS_MODEL) == {"usage": False, "builtin_tools": False}

        shown = browser_chat(ui, MODEL, question, tmp_path / "compose.png")
        by_flag = browser_chat(ui, ALWAYS_MODEL, always_question, tmp_path / "always-return-usage.png")

        # Title generation runs alongside the reply, tags and follow-ups after it: wait for all three on both
        # connections, so that nothing is in flight when Open WebUI stops.
        for gateway in (compose, always):
            for task, head in TASK_PROMPTS.items():
                wait_until(partial(logged_prompt, gateway, head), 60, f"the {task} generation at {gateway.url}")

    # What Open WebUI sent, as compose sets it up: it asks for usage itself, and sends no tool schemas.
    sent = sent_chat(compose_wire, question)
    assert sent["stream"] is True and sent.get("stream_options") == {"include_usage": True}, sorted(sent)
    assert "tools" not in sent and "tool_choice" not in sent, sorted(sent)
    # The `always.` model, usage off: no stream_options (and still no tools); only the gateway's flag adds usage.
    sent_always = sent_chat(always_wire, always_question)
    assert sent_always["stream"] is True and "stream_options" not in sent_always, sorted(sent_always)
    assert "tools" not in sent_always and "tool_choice" not in sent_always, sorted(sent_always)

    # The browser shows the simulator's reply: reasoning collapsed, then the answer the gateway logged.
    chat_lines = [line for line in generations(compose) if line["kind"] == "chat"]
    assert len(chat_lines) == 1, chat_lines
    chat = chat_lines[0]
    assert (shown["selected_model"], by_flag["selected_model"]) == (MODEL, ALWAYS_MODEL)
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

    # Usage under both replies, and the numbers are the gateway's exact counts: on the compose connection because
    # Open WebUI asked for it, on the `always.` one because of the flag.
    always_chat = [line for line in generations(always) if line["kind"] == "chat"]
    assert len(always_chat) == 1 and always_chat[0]["prompt"] == always_question, always_chat
    assert by_flag["answer_text"] and words(by_flag["answer_text"]) == words(always_chat[0]["completion"]), by_flag
    for report, line in ((shown, chat), (by_flag, always_chat[0])):
        assert report["usage_shown"] and report["info_button"], report
        ui_usage = usage_numbers(report["usage_text"])
        assert ui_usage["prompt_tokens"] == line["prompt_tokens"], (ui_usage, line)
        assert ui_usage["completion_tokens"] == line["completion_tokens"], (ui_usage, line)
        assert ui_usage["total_tokens"] == line["total_tokens"], (ui_usage, line)
        assert f"completion_tokens: {line['completion_tokens']}" in report["usage_tooltip"], report

    # Background generations: every "### Task:" prompt is logged as a task, never as chat, with the same user;
    # each connection saw exactly one chat and one of each default task.
    for gateway in (compose, always):
        seen = []
        for line in generations(gateway):
            assert (line["kind"] == "task") == line["prompt"].lstrip().startswith("### Task:"), line
            assert line["user"] == DEFAULT_USER and line["status"] == 200 and line["model"] == MODEL, line
            assert line["stream"] is (line["kind"] == "chat"), line
            seen.append(task_name(line["prompt"]) if line["kind"] == "task" else "chat")
        assert sorted(seen) == sorted(["chat", *TASK_PROMPTS]), seen

    # Exact tokens end to end: once the engine has finished every request the gateways logged, their token sums
    # are the engine's own counters.
    logged = generations(compose) + generations(always)

    def engine_done() -> Samples | None:
        samples = scrape(sim_url + "/metrics")
        return samples if total(samples, "vllm:request_success_total") == len(logged) else None

    engine = wait_until(engine_done, 10, f"the simulator to count {len(logged)} finished requests")
    assert total(engine, "vllm:prompt_tokens_total") == sum(line["prompt_tokens"] for line in logged)
    assert total(engine, "vllm:generation_tokens_total") == sum(line["completion_tokens"] for line in logged)


def test_chat_with_attached_file_is_chat(sim_url: str, start_gateway: GatewayFactory, tmp_path: Path) -> None:
    gateway = start_gateway_for_ui(start_gateway, sim_url, tmp_path)
    question = "Which port does the gateway listen on"
    with open_webui(tmp_path, gateway.url) as ui, signed_in(ui) as client:
        # Open WebUI's own HTTP API: upload a file, chat with it.
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
            lambda: next((x for x in generations(gateway) if x["stream"] and x["prompt"].endswith(question)), None),
            20,
            "the streamed chat with the attached file in the access log",
        )
    # Open WebUI's RAG template wraps the question under a "### Task:" heading; it is still the user's chat.
    assert line["prompt"].startswith("### Task:\nRespond to the user query using the provided context"), line
    assert (line["kind"], line["status"], line["user"]) == ("chat", 200, DEFAULT_USER), line


def test_compose_settings_are_the_ones_open_webui_would_freeze() -> None:
    """The env -> config-key table the compose tests use, against the installed Open WebUI: each key is in its
    DEFAULT_CONFIG, built from that variable, and ENABLE_PERSISTENT_CONFIG decides whether the database wins."""
    source = (OPEN_WEBUI.parent.parent / "lib").glob("python3*/site-packages/open_webui/config.py")
    text = next(source).read_text()
    for env_name, key in OPEN_WEBUI_PERSISTENT.items():
        plural = re.sub(r"(URL|KEY)$", r"\1S", env_name)
        assert re.search(rf"'{re.escape(key)}': {plural}\b", text), f"{key} is not built from {env_name}"
        assert f"os.getenv('{env_name}'" in text, env_name
    assert "enable_persistent=ENABLE_PERSISTENT_CONFIG" in text
    assert "ENABLE_PERSISTENT_CONFIG = os.getenv('ENABLE_PERSISTENT_CONFIG', 'True').lower() == 'true'" in text


def test_a_rotated_gateway_key_takes_effect_at_the_next_start(
    sim_url: str, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """Same data directory, new gateway (new URL) and new key in the environment: with compose's
    ENABLE_PERSISTENT_CONFIG both are used (with persistence on, Open WebUI keeps the first start's URL and key)."""
    for key in ("sk-llmwatch-first-key", "sk-llmwatch-rotated-key"):
        keys = tmp_path / f"api-keys-{key}"
        keys.write_text(f"open-webui={key} forward-user\n")
        gateway = start_gateway(sim_url, "--api-keys", str(keys))
        with open_webui(tmp_path, gateway.url, key=key) as ui_url, signed_in(ui_url) as client:
            models = client.get("/api/models").raise_for_status().json()["data"]
            assert MODEL in [m["id"] for m in models], f"Open WebUI could not list models with {key}"
        gateway.proc.stop()  # the old gateway is gone: a frozen URL or key can't be answered any more


ADMIN = {"email": "admin@localhost", "password": "llmwatch-admin-test-password"}


def signs_in_as_admin_and_refuses_sign_up(ui_url: str) -> tuple[int, int]:
    """(sign-in status as the .env admin, then the status of a stranger's sign-up)."""
    with httpx.Client(base_url=ui_url, timeout=30) as client:
        signin = client.post("/api/v1/auths/signin", json=ADMIN)
        if signin.status_code == 200:
            assert signin.json()["role"] == "admin", signin.json()
        stranger = {"name": "stranger", "email": "stranger@example.com", "password": "stranger-password-123"}
        return signin.status_code, client.post("/api/v1/auths/signup", json=stranger).status_code


def test_the_first_admin_comes_from_env_and_nobody_can_sign_up(tmp_path: Path) -> None:
    """Compose's login settings on the real Open WebUI: WEBUI_ADMIN_EMAIL/PASSWORD create the admin at the first
    start (main.py, create_admin_user while no user exists), and ENABLE_SIGNUP=false keeps strangers out at that
    start and the next. Without compose's ENABLE_SIGNUP line, the "off" Open WebUI sets after creating the admin
    lives in memory only while persistent config is off, so from the second start on strangers can sign up: that
    is why compose sets it."""
    login = {
        "WEBUI_AUTH": "true",
        "WEBUI_ADMIN_EMAIL": ADMIN["email"],
        "WEBUI_ADMIN_PASSWORD": ADMIN["password"],
        "ENABLE_SIGNUP": compose_env("ENABLE_SIGNUP"),
    }
    assert login["ENABLE_SIGNUP"] == "false"
    unused = f"http://127.0.0.1:{free_port()}"
    for start in ("first", "second"):  # the second start reads the database the first one wrote
        with open_webui(tmp_path / "compose", unused, overrides=login) as ui_url:
            assert signs_in_as_admin_and_refuses_sign_up(ui_url) == (200, 403), f"{start} start"
    without = {name: value for name, value in login.items() if name != "ENABLE_SIGNUP"}
    for start, expected in (("first", (200, 403)), ("second", (200, 200))):
        with open_webui(tmp_path / "without", unused, overrides=without) as ui_url:
            assert signs_in_as_admin_and_refuses_sign_up(ui_url) == expected, f"without ENABLE_SIGNUP, {start} start"
