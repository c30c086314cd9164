"""The engine-sizing thresholds (max_num_seqs, max_model_len, GPU memory share, GPUs expected), rendered from .env.

These values must equal the engine's own flags, and Prometheus rule files have no env expansion. So compose renders
the rule file from .env through the `prometheus-engine-sizing` entry of docker-compose.yml's `configs:` (its
`content:` is the one template). Everything that runs Prometheus outside compose (`make demo`, the promtool tests,
the live tests) renders that same template here, with compose's own interpolation rules, so nothing can drift.

prometheus/defaults/engine-sizing.yml is that template rendered with every default, committed so that the promtool
tests run from a checkout (`promtool test rules prometheus/tests/*.yml`) and `llmwatch doctor` knows the stack's
defaults; a test checks it equals `defaults()`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
CONFIG_NAME = "prometheus-engine-sizing"
FILE_NAME = "engine-sizing.yml"
DEFAULTS_FILE = COMPOSE_FILE.parent / "prometheus" / "defaults" / FILE_NAME
DEFAULTS_HEADER = (
    "# Generated: the `prometheus-engine-sizing` config of docker-compose.yml with every variable at its default.\n"
    "# Do not edit; regenerate with `python -m llmwatch.engine_sizing` (tests/unit/test_prometheus_rules.py checks).\n"
)
# Where compose mounts it; prometheus/prometheus.yml lists this directory in rule_files.
COMPOSE_DIR = "/etc/prometheus-rendered"

# compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


class RenderError(ValueError):
    """A required variable is unset, as compose would refuse it."""


def template(compose_file: Path = COMPOSE_FILE) -> str:
    """The rule file as written in docker-compose.yml, before interpolation."""
    doc = yaml.safe_load(compose_file.read_text())
    return str(doc["configs"][CONFIG_NAME]["content"])


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Expand ``text`` the way compose expands a compose file against .env and the environment."""

    def expand(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["plain"] or match["name"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        if op in (":-", ":?") and value == "":
            value = None
        if value is not None:
            return value
        if op is not None and op.endswith("?"):
            raise RenderError(f"{name} is required: {arg}")
        return arg if op is not None and op.endswith("-") else ""

    return _VARIABLE.sub(expand, text)


def render(env: Mapping[str, str] | None = None, compose_file: Path = COMPOSE_FILE) -> str:
    """The engine-sizing rule file for these .env values (defaults where unset)."""
    return interpolate(template(compose_file), env or {})


def write(directory: Path, env: Mapping[str, str] | None = None, compose_file: Path = COMPOSE_FILE) -> Path:
    """Render into ``directory``/engine-sizing.yml and return that path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    path.write_text(render(env, compose_file))
    return path


def defaults(compose_file: Path = COMPOSE_FILE) -> str:
    """The committed defaults file's text: the template rendered with no .env, under a "generated" header."""
    return DEFAULTS_HEADER + render({}, compose_file)


if __name__ == "__main__":
    DEFAULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    DEFAULTS_FILE.write_text(defaults())
