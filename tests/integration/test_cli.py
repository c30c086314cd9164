"""Every `llmwatch` subcommand refuses bad flags and env values in one line naming the flag, with exit status 2."""

from __future__ import annotations

import os
import subprocess

import pytest

from llmwatch.cli import SUBCOMMANDS
from tests.support import llmwatch_cmd

pytestmark = pytest.mark.integration

# subcommand -> (a bad flag and value, the same mistake as an env var)
BAD_INPUT = {
    "gateway": (["--port", "abc"], {"LLMWATCH_GATEWAY_PORT": "abc"}),
    "sim": (["--latency-multiplier", "0"], {"LLMWATCH_SIM_LATENCY_MULTIPLIER": "0"}),
    "relay": (["--timeout-seconds", "soon"], {"LLMWATCH_RELAY_TIMEOUT_SECONDS": "soon"}),
    "demo": (["--requests", "many"], {"LLMWATCH_DEMO_REQUESTS": "many"}),
    "doctor": (["--window", "5x"], {"LLMWATCH_DOCTOR_WINDOW": "5x"}),
}
# Flags a subcommand requires, so that the bad one is the only problem.
REQUIRED = {"doctor": ["--prometheus", "http://127.0.0.1:9"]}


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LLMWATCH_")}
    return subprocess.run(
        llmwatch_cmd(*args), capture_output=True, text=True, timeout=60, env={**clean, **(env or {})}, check=False
    )


def _one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_bad_flag_and_env_value_are_one_line_and_exit_2(command: str) -> None:
    flag, env = BAD_INPUT[command]
    required = REQUIRED.get(command, [])
    _one_line_error(_run([command, *required, *flag]), flag[0], repr(flag[1]))
    [(name, value)] = env.items()
    _one_line_error(_run([command, *required], env), flag[0], name, repr(value))
    _one_line_error(_run([command, *required, "--no-such-flag"]), "--no-such-flag")


def test_gateway_upstream_must_be_an_http_url() -> None:
    _one_line_error(_run(["gateway", "--upstream", "notaurl"]), "--upstream", "http(s) URL")
    _one_line_error(_run(["gateway", "--upstream", "http://engine:8000/v1"]), "without /v1")
    _one_line_error(_run(["gateway", "--allow-route", "POST v1/x"]), "--allow-route", "METHOD /path")


def test_gateway_api_keys_file_problems_name_the_flag(tmp_path: object) -> None:
    _one_line_error(_run(["gateway", "--api-keys", "/nonexistent/keys"]), "--api-keys", "No such file")


def test_help_shows_real_defaults() -> None:
    result = _run(["gateway", "--help"])
    assert result.returncode == 0
    assert "default factory" not in result.stdout
    assert "http://127.0.0.1:8000" in result.stdout
