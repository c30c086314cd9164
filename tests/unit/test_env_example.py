"""Offline checks of .env.example against docker-compose.yml: every variable documented, pinned, no default secrets."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.support import REPO
from tests.support.compose import (
    ASSIGNMENT,
    COMPOSE_OWN,
    ENV_EXAMPLE,
    SECRET_NAME,
    compose_variables,
    parse_env_example,
    required_messages,
)

pytestmark = pytest.mark.unit


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
        match = ASSIGNMENT.match(line)
        if match and not (previous.startswith("#") or ASSIGNMENT.match(previous)):
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
        "WEBUI_ADMIN_PASSWORD",
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


# Pins whose tag could not be confirmed in upstream tags or changelogs when last reviewed; they say so in the file.
UNCONFIRMED: set[str] = set()


def test_every_image_pin_names_where_it_was_checked() -> None:
    """A pin nobody found upstream breaks the first pull; each one says where its version was confirmed."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        match = ASSIGNMENT.match(line)
        if not match or not match.group(1).endswith(("_VERSION", "_RELEASE")) or match.group(1) == "LLMWATCH_VERSION":
            continue
        above = []
        for previous in reversed(lines[:i]):
            if not previous.startswith("#"):
                break
            above.append(previous)
        note = "# Unconfirmed:" if match.group(1) in UNCONFIRMED else "# Checked:"
        assert any(c.startswith(note) for c in above), f"{match.group(1)}: add a `{note} <source>` line above it"
