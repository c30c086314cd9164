"""The run's record: steps with their durations, correctness checks, tables; gpu-check.json and REPORT.md."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.gpu_check.report import report_markdown


class Record:
    """Steps with their durations, correctness checks, tables; written as JSON and markdown at the end."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.data: dict[str, Any] = {"steps": [], "checks": [], "sweep": [], "gate": None, "facts": {}}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        entry: dict[str, Any] = {"step": name, "seconds": None, "ok": False, "note": ""}
        self.data["steps"].append(entry)
        say(f"-- {name} ...")
        started = time.monotonic()
        try:
            yield entry
            entry["ok"] = True
        except Exception as exc:
            entry["note"] = f"{type(exc).__name__}: {exc}"[:2000]
            raise
        finally:
            entry["seconds"] = round(time.monotonic() - started, 1)
            say(f"-- {name}: {entry['seconds']} s {'ok' if entry['ok'] else 'FAILED ' + entry['note'][:300]}")

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.data["checks"].append({"check": name, "ok": bool(ok), "detail": detail})
        say(f"   {'PASS' if ok else 'FAIL'} {name}: {detail}")

    def save(self) -> None:
        (self.out / "gpu-check.json").write_text(json.dumps(self.data, indent=2, ensure_ascii=False) + "\n")
        (self.out / "REPORT.md").write_text(report_markdown(self.data), encoding="utf-8")


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
