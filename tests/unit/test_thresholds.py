"""llmwatch.thresholds reads the same constants the alert rules compare against."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmwatch import thresholds
from tests.support import REPO
from tests.unit.test_compose import dockerfile_stages


@pytest.mark.unit
def test_reads_the_repo_file() -> None:
    assert thresholds.value("threshold:gateway_ttft_p99_seconds:max") == 0.8
    assert thresholds.value("threshold:engine_stream_decode_tokens_per_second:min", gpu_class="h100") == 340


@pytest.mark.unit
def test_ambiguous_or_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(thresholds.ThresholdError, match="2 constant values"):
        thresholds.value("threshold:gateway_request_p99_seconds:max")
    with pytest.raises(thresholds.ThresholdError, match="0 constant values"):
        thresholds.value("threshold:nope:max")


@pytest.mark.unit
def test_computed_records_are_not_constants(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text(
        "groups: [{name: g, rules: [{record: 'threshold:a:max', expr: 'vector(3e9)'},"
        " {record: 'threshold:b:min', expr: 'min(x)'}]}]\n"
    )
    assert [(t.record, t.value) for t in thresholds.load(path)] == [("threshold:a:max", 3e9)]


@pytest.mark.integration
def test_the_package_built_as_the_image_builds_it_carries_the_rule_files(tmp_path: Path) -> None:
    """services/Dockerfile's build stage, re-enacted: its COPY sources only (what .dockerignore lets through is
    checked in test_compose.py), the package built by setup.py, then that package reads the defaults from itself."""
    context = tmp_path / "src"
    copies = [c for stage in dockerfile_stages() for c in stage if c.cmd == "COPY" and not c.flags]
    for copy in copies:
        *sources, dest = copy.value
        for source in sources:
            target = context / dest / Path(source).name if dest.endswith("/") else context / dest
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, context / dest, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / source, target)
    assert (context / thresholds.THRESHOLDS).is_file() and (context / thresholds.ENGINE_SIZING_DEFAULTS).is_file()
    # The wheel is the build_py tree zipped; run build_py itself, offline (no build isolation, no index).
    site = tmp_path / "site"
    build = [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(site)]
    done = subprocess.run(build, capture_output=True, text=True, timeout=300, cwd=context)
    assert done.returncode == 0, done.stderr
    for name in (thresholds.THRESHOLDS, thresholds.ENGINE_SIZING_DEFAULTS):
        assert (site / "llmwatch" / thresholds.PACKAGED / name).read_text() == (REPO / name).read_text()
    probe = ("from llmwatch import thresholds; print(thresholds.shipped(thresholds.THRESHOLDS)); "
             "print(thresholds.value('threshold:gateway_ttft_p99_seconds:max'))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(site / "llmwatch" / thresholds.PACKAGED / thresholds.THRESHOLDS), "0.8"]
