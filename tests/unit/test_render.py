"""llmwatch.render: each deployment config is read from the checkout it is given, never from a path guessed around the
installed package, and a source that lost what a translation reads is a one-line error naming it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmwatch.render import engine_sizing, prometheus
from llmwatch.render.k8s import images, logs
from llmwatch.render.k8s.objects import SourceError
from tests.support import REPO

pytestmark = pytest.mark.unit


def test_the_package_guesses_no_checkout_path() -> None:
    """The image holds the package without the checkout around it: no module walks up from its own file."""
    guessing = [
        path.relative_to(REPO).as_posix()
        for path in (REPO / "services").rglob("*.py")
        if "parents[" in path.read_text() or ".parent.parent" in path.read_text()
    ]
    assert guessing == []


def test_engine_sizing_renders_the_template_of_the_checkout_it_is_given(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    doc["configs"][engine_sizing.CONFIG_NAME]["content"] = "groups: [{name: x, rules: []}]  # ${VLLM_MAX_NUM_SEQS:-4}\n"
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(doc))
    assert engine_sizing.render(tmp_path, {"VLLM_MAX_NUM_SEQS": "7"}) == "groups: [{name: x, rules: []}]  # 7\n"
    assert "vector(7)" in engine_sizing.render(REPO, {"VLLM_MAX_NUM_SEQS": "7"})


def test_a_source_missing_what_a_translation_reads_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text("LLMWATCH_VERSION=1\n")
    with pytest.raises(SourceError, match=r"^\.env\.example has no VLLM_VERSION; update"):
        images.images(tmp_path)
    filebeat = yaml.safe_load((REPO / "filebeat/filebeat.yml").read_text())
    filebeat["filebeat.inputs"] = [i for i in filebeat["filebeat.inputs"] if i.get("id") != logs.GATEWAY_INPUT]
    (tmp_path / "filebeat").mkdir()
    (tmp_path / "filebeat/filebeat.yml").write_text(yaml.safe_dump(filebeat))
    with pytest.raises(SourceError, match=f"filebeat/filebeat.yml has no input with id '{logs.GATEWAY_INPUT}'"):
        logs.filebeat(tmp_path)


def test_the_generator_reports_a_broken_source_in_one_line(tmp_path: Path) -> None:
    """deploy/k8s/generate.py on a checkout whose .env.example lost a pin: exit 1, one line, no traceback."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "deploy/k8s", repo / "deploy/k8s")
    env = (REPO / ".env.example").read_text().replace("\nVLLM_VERSION=", "\nXVLLM_VERSION=")
    (repo / ".env.example").write_text(env)
    done = subprocess.run(
        [sys.executable, str(repo / "deploy/k8s/generate.py"), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "generate.py: .env.example has no VLLM_VERSION; update llmwatch/render/k8s/images.py"
    ]


def test_the_demos_prometheus_scrapes_what_runs_locally_and_loads_the_rendered_sizing(tmp_path: Path) -> None:
    ports = {"gateway": 14001, "engine": 18000, "alertmanager": 19093, "localhost": 19090, "relay": 19099}
    sizing = engine_sizing.write(REPO, tmp_path, {"VLLM_MAX_NUM_SEQS": "8"})
    config = prometheus.local(REPO, ports, {"gateway", "engine"}, "5s", sizing)
    targets = {
        job["job_name"]: [t for s in job["static_configs"] for t in s["targets"]] for job in config["scrape_configs"]
    }
    assert targets == {"gateway": ["127.0.0.1:14001"], "vllm": ["127.0.0.1:18000"], "prometheus": ["127.0.0.1:19090"]}
    assert config["rule_files"] == [str(REPO / "prometheus/rules/*.yml"), str(sizing)]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19093"]
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "5s"
    without = prometheus.local(REPO, ports, {"gateway"})
    assert without["rule_files"] == [str(REPO / "prometheus/rules/*.yml")], "no sizing file: its entry is dropped"
