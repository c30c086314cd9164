"""The engine-sizing thresholds (max_num_seqs, max_model_len, GPU memory share, GPUs expected), rendered from .env.

These values must equal the engine's own flags, and Prometheus rule files have no env expansion. The one template is
the `prometheus-engine-sizing` config of docker-compose.yml: compose renders its `content:` from .env itself. Every
other target renders that same template here, with compose's interpolation rules: `make demo` and the live tests
(the demo's values), Kubernetes (deploy/k8s/base/engine-flags.yaml) and prometheus/defaults/engine-sizing.yml (every
default; written by deploy/k8s/generate.py so that `promtool test rules prometheus/tests/*.yml` runs from a checkout,
and shipped in the wheel so `llmwatch doctor` knows the stack's defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from llmwatch.render.interpolate import interpolate

COMPOSE_FILE = "docker-compose.yml"
CONFIG_NAME = "prometheus-engine-sizing"
FILE_NAME = "engine-sizing.yml"
# Where compose mounts it; prometheus/prometheus.yml lists this directory in rule_files.
COMPOSE_DIR = "/etc/prometheus-rendered"
DEFAULTS_HEADER = (
    f"# Generated: the `{CONFIG_NAME}` config of docker-compose.yml with every variable at its default.\n"
    "# Do not edit; regenerate with `make k8s` (deploy/k8s/generate.py; its `--check` runs in the tests).\n"
)


def template(repo: Path) -> str:
    """The rule file as written in the checkout's docker-compose.yml, before interpolation."""
    doc = yaml.safe_load((repo / COMPOSE_FILE).read_text())
    return str(doc["configs"][CONFIG_NAME]["content"])


def render(repo: Path, env: Mapping[str, str] | None = None) -> str:
    """The engine-sizing rule file for these .env values (defaults where unset)."""
    return interpolate(template(repo), env or {})


def write(repo: Path, directory: Path, env: Mapping[str, str] | None = None) -> Path:
    """Render into ``directory``/engine-sizing.yml and return that path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    path.write_text(render(repo, env))
    return path


def defaults(repo: Path) -> str:
    """prometheus/defaults/engine-sizing.yml: the template rendered with no .env, under a "generated" header."""
    return DEFAULTS_HEADER + render(repo, {})
