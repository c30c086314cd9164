"""docs/edge.md's scrape job for a remote board is a valid Prometheus config next to the stack's own jobs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import REPO, need_binary

EDGE = REPO / "docs" / "edge.md"


def board_job() -> dict[str, object]:
    blocks = re.findall(r"```yaml\n(.*?)```", EDGE.read_text(), flags=re.DOTALL)
    jobs = [job for block in blocks for job in yaml.safe_load(block) or [] if isinstance(job, dict)]
    [job] = [job for job in jobs if job.get("job_name") == "board"]
    return job


@pytest.mark.unit
def test_board_job_scrapes_node_exporter_with_the_stacks_label_scheme() -> None:
    job = board_job()
    (static,) = job["static_configs"]  # type: ignore[index]
    assert all(target.endswith(":9100") for target in static["targets"])
    assert static["labels"] == {"service": "node-exporter"}


@pytest.mark.integration
def test_board_job_passes_promtool_in_the_stacks_config(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    config["scrape_configs"].append(board_job())
    config["rule_files"] = []  # the rules are checked on their own; here only the scrape config matters
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([need_binary("promtool"), "check", "config", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
