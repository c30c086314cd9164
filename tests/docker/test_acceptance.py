"""scripts/acceptance.sh as a docker-marked test: the whole sim-profile stack, every end-to-end check of the
acceptance run (see its --help). Skipped, saying why, when no Docker daemon answers."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support import REPO

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

SCRIPT = REPO / "scripts/acceptance.sh"


def docker_answers() -> str | None:
    """None when a Docker daemon answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    done = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    return None if done.returncode == 0 else f"no Docker daemon answers: {done.stderr.strip()[:200]}"


def test_help_says_what_it_needs() -> None:
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30, check=True)
    assert "cannot run on a machine" in done.stdout and "llmwatch-acceptance" in done.stdout


def test_acceptance_run_passes_every_check() -> None:
    why = docker_answers()
    if why:
        pytest.skip(why)
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=1700, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]
    checks = {line.split()[1].rstrip(":") for line in lines}
    assert checks == {"healthy", "es-empty", "kibana", "grafana", "prometheus", "alert-drill"}, done.stdout
    assert done.returncode == 0 and not [x for x in lines if x.startswith("FAIL")], done.stdout + done.stderr
