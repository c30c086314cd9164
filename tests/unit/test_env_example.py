"""Offline checks of .env.example against docker-compose.yml: every variable documented, pinned, no default secrets.

The helpers here (``parse_env_example``, ``required_messages``, ``filled_env_text``) are shared with test_compose.py,
which renders the stack with the real compose binary.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

import pytest

from tests.support import REPO

pytestmark = pytest.mark.unit

ENV_EXAMPLE = REPO / ".env.example"
COMPOSE_FILE = REPO / "docker-compose.yml"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; `$$` is compose's escape for a literal `$`.
_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
# Names that hold credentials: they may be required (`:?`) or optional with an empty default, never defaulted.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_TOKEN$|_KEY$|WEBHOOK|(DINGTALK|WECOM|FEISHU)_URL$")
# Read by compose itself rather than interpolated into the file.
COMPOSE_OWN = {"COMPOSE_PROFILES"}


@dataclass(frozen=True)
class Reference:
    name: str
    operator: str  # "", ":-", "-", ":?", "?"
    argument: str


def compose_variables() -> list[Reference]:
    """Every variable reference in docker-compose.yml, in file order, comments excluded."""
    lines = COMPOSE_FILE.read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return [Reference(m.group(1), m.group(2) or "", m.group(3) or "") for m in _REFERENCE.finditer(text)]


def required_messages() -> dict[str, str]:
    """VAR -> the message of its `${VAR:?message}`; one message per variable (the test below holds them equal)."""
    return {ref.name: ref.argument for ref in compose_variables() if ref.operator == ":?"}


def parse_env_example() -> dict[str, str]:
    """VAR -> value as written in .env.example."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ASSIGNMENT.match(line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def filled_env_text(drop: frozenset[str] = frozenset()) -> str:
    """.env.example with every empty required variable filled by a dummy, minus the names in ``drop``."""
    required = required_messages()
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ASSIGNMENT.match(line)
        if match and match.group(1) in drop:
            continue
        if match and match.group(2) == "" and match.group(1) in required:
            line = f"{match.group(1)}=dummy-{match.group(1).lower()}-0123456789abcdef0123456789abcdef"
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_every_compose_variable_is_in_env_example() -> None:
    missing = sorted({ref.name for ref in compose_variables()} - parse_env_example().keys())
    assert not missing, f"docker-compose.yml reads these, but .env.example does not list them: {missing}"


def test_env_example_has_no_stale_variables() -> None:
    stale = sorted(parse_env_example().keys() - {ref.name for ref in compose_variables()} - COMPOSE_OWN)
    assert not stale, f".env.example lists variables docker-compose.yml never reads: {stale}"


def test_env_example_starts_with_the_two_line_header() -> None:
    first, second = ENV_EXAMPLE.read_text().splitlines()[:2]
    assert first.startswith("# ") and second.startswith("# "), "config files start with a two-line header comment"


def test_every_variable_block_is_commented() -> None:
    """Each run of assignments is introduced by a comment line, so every setting is explained."""
    previous = ""
    uncommented = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ASSIGNMENT.match(line)
        if match and not (previous.startswith("#") or _ASSIGNMENT.match(previous)):
            uncommented.append(match.group(1))
        previous = line
    assert not uncommented, f"add a comment above: {uncommented}"


def test_images_are_pinned_in_env_example() -> None:
    env = parse_env_example()
    image_vars = {ref.name for ref in compose_variables() if ref.name.endswith("_VERSION")}
    assert {"VLLM_VERSION", "OPEN_WEBUI_VERSION", "ELASTIC_VERSION", "GRAFANA_VERSION"} <= image_vars
    for name in sorted(image_vars):
        value = env[name]
        assert value and value.lower() not in {"latest", "main", "stable", "nightly"}, f"{name}={value!r} is not a pin"
        assert re.search(r"\d+\.\d+", value), f"{name}={value!r} should name a version"
    assert env["VLLM_VERSION"].startswith("v0.33."), "the project targets vLLM 0.33"


def test_llmwatch_image_tag_follows_pyproject() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert parse_env_example()["LLMWATCH_VERSION"] == version
    defaults = {ref.argument for ref in compose_variables() if ref.name == "LLMWATCH_VERSION"}
    assert defaults == {version}, "the compose fallback for LLMWATCH_VERSION should match pyproject.toml"


def test_no_default_secrets() -> None:
    env = parse_env_example()
    for ref in compose_variables():
        if SECRET_NAME.search(ref.name):
            assert ref.operator in {":?", ":-"}, f"${{{ref.name}}} must be required (:?) or optional (:-)"
            if ref.operator == ":-":
                assert ref.argument == "", f"${{{ref.name}}} has a default value: {ref.argument!r}"
    filled = {name: value for name, value in env.items() if SECRET_NAME.search(name) and value}
    assert not filled, f".env.example must not carry secret values: {sorted(filled)}"


def test_required_secrets_are_the_documented_ones() -> None:
    required = {name for name in required_messages() if SECRET_NAME.search(name)}
    assert required == {
        "GATEWAY_API_KEY",
        "WEBUI_SECRET_KEY",
        "ELASTIC_PASSWORD",
        "LOGSTASH_WRITER_PASSWORD",
        "KIBANA_SYSTEM_PASSWORD",
        "GRAFANA_READER_PASSWORD",
        "KIBANA_ENCRYPTION_KEY",
        "GRAFANA_ADMIN_PASSWORD",
    }


def test_each_required_variable_has_one_message_that_names_it() -> None:
    messages: dict[str, set[str]] = {}
    for ref in compose_variables():
        if ref.operator in {":?", "?"}:
            messages.setdefault(ref.name, set()).add(ref.argument)
    for name, texts in messages.items():
        assert len(texts) == 1, f"{name} has different messages in docker-compose.yml: {sorted(texts)}"
        assert name in next(iter(texts)), f"the message for {name} should say which variable to set"
        assert ": " not in next(iter(texts)), "': ' inside a plain YAML scalar breaks the YAML"
