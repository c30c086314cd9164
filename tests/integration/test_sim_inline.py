"""Without --reasoning-parser the R1 text stays inline: reasoning, `</think>`, answer; admin routes are off."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from tests.support import free_port, llmwatch_cmd, running, sim_cmd

pytestmark = pytest.mark.integration


def test_inline_think_mode_and_admin_disabled(tmp_path: Path) -> None:
    port = free_port()
    args = sim_cmd(port, "--gpu-profile", "h100", "--seed", "3")
    with running(args, tmp_path / "sim.log", f"http://127.0.0.1:{port}/health"):
        url = f"http://127.0.0.1:{port}"
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        messages = [{"role": "user", "content": "Explain photosynthesis"}]
        done = client.chat.completions.create(model="deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", messages=messages,
                                              max_tokens=2000)  # type: ignore[arg-type]  # fmt: skip
        content = done.choices[0].message.content or ""
        assert getattr(done.choices[0].message, "reasoning", None) is None
        reasoning, marker, answer = content.partition("</think>")
        assert marker and reasoning and answer.startswith("\n\n")
        assert not content.startswith("<think>")  # the R1 chat template already opened it in the prompt
        stream = client.chat.completions.create(model="deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
                                                messages=messages, max_tokens=2000, stream=True)  # type: ignore[arg-type]  # fmt: skip
        assert "".join(c.choices[0].delta.content or "" for c in stream) == content
        assert httpx.get(f"{url}/admin/faults").status_code == 404


def test_health_is_503_until_startup_seconds_pass(tmp_path: Path) -> None:
    port = free_port()
    args = llmwatch_cmd("sim", "--host", "127.0.0.1", "--port", str(port), "--startup-seconds", "1.5")
    with running(args, tmp_path / "sim.log", f"http://127.0.0.1:{port}/version") as proc:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health").status_code == 503
        response = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert response.status_code == 503
        proc.wait_http(f"{url}/health", timeout=10)
