"""Run the load test (`locust -f loadtest/...`) headless as a child process, and read what it wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import REPO


@dataclass
class LoadRun:
    returncode: int
    output: str
    report_dir: Path

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.report_dir / "summary.json").read_text())
        return data

    def samples(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.report_dir / "samples.jsonl").read_text().splitlines()]

    def row(self, slo: str) -> dict[str, Any]:
        return next(r for r in self.summary()["slos"] if r["slo"] == slo)


def run_locust(report_dir: Path, host: str, *flags: str, locustfile: str = "loadtest/locustfile.py",
               timeout: float = 180) -> LoadRun:  # fmt: skip
    """`locust -f LOCUSTFILE --host HOST --headless FLAGS`, its report in ``report_dir``."""
    args = [
        sys.executable, "-m", "locust", "-f", str(REPO / locustfile), "--host", host, "--headless",
        "--only-summary", "--stop-timeout", "30", "--report-dir", str(report_dir), *flags,
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=report_dir.parent)
    return LoadRun(done.returncode, done.stdout + done.stderr, report_dir)
