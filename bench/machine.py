"""The machine a benchmark ran on: CPUs, kernel, Python, and the versions of every path's software (results.json's
"machine", RESULTS.md's header)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``; None when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else "unknown"


def _nginx_version() -> str | None:
    try:
        out = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=5).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.strip().split("/")[-1] or None


def machine_facts(litellm_venv: Path) -> dict[str, Any]:
    litellm = sorted(litellm_venv.glob("lib/python*/site-packages/litellm-*.dist-info"))
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvicorn": installed_version("uvicorn"),
        "uvloop": installed_version("uvloop"),
        "aiohttp": installed_version("aiohttp"),
        "fastapi": installed_version("fastapi"),
        "httpx": installed_version("httpx"),
        "llmwatch": installed_version("llmwatch"),
        "nginx": _nginx_version(),
        "litellm": litellm[-1].name.removeprefix("litellm-").removesuffix(".dist-info") if litellm else None,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
