"""``overhead.py --profile``: the gateway under one workload's load (``--profile-workload``, default 64 unpaced
streams), sampled by py-spy, plus a hot-spot summary.

py-spy attaches to the running gateway (``py-spy record --pid``), so it needs ptrace rights: root, or
CAP_SYS_PTRACE in a container. It is not a project dependency: ``.venv/bin/pip install py-spy``.
"""

from __future__ import annotations

import collections
import logging
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.paths import start_all, stop_all
from bench.procs import thread_cpu
from bench.runner import LoadGen, Plan, Workload, job_for, measure

log = logging.getLogger(__name__)


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def hot_spots(speedscope: dict[str, Any], top: int = 20) -> list[str]:
    """Per sampled thread: its sample count, then the frames most samples sit in (self %, total %).

    py-spy counts a thread blocked in a lock wait (the access-log QueueListener) as busy, so read these next to
    the per-thread CPU seconds from /proc that ``run`` prints: only the threads that burn CPU matter.
    """
    frames = [
        f"{f['name']} ({Path(f.get('file', '?')).name}:{f.get('line', '?')})" for f in speedscope["shared"]["frames"]
    ]
    lines: list[str] = []
    for prof in speedscope["profiles"]:
        self_w: collections.Counter[int] = collections.Counter()
        total_w: collections.Counter[int] = collections.Counter()
        weight_sum = 0.0
        for stack, weight in zip(prof["samples"], prof["weights"], strict=True):
            weight_sum += weight
            if stack:
                self_w[stack[-1]] += weight
            for idx in set(stack):
                total_w[idx] += weight
        lines += ["", f"{prof['name']}: {len(prof['samples'])} samples", "  self%  total%  frame"]
        lines += [
            f"{100 * w / weight_sum:7.1f} {100 * total_w[i] / weight_sum:7.1f}  {frames[i]}"
            for i, w in self_w.most_common(top)
        ]
    return lines


def run(
    upstream_ports: Sequence[int],
    workload: Workload,
    work: Path,
    out: Path,
    seconds: float,
    fmt: str,
    proxy_cpus: Sequence[int] | None,
    load_cpus: Sequence[int] | None,
    native: bool = False,
) -> int:
    spy = _py_spy()
    if spy is None:
        log.error("py-spy not found: .venv/bin/pip install py-spy")
        return 2
    targets = start_all(["gateway"], upstream_ports[: workload.engines], work, proxy_cpus)
    loadgen = LoadGen(work, load_cpus)
    gateway = targets[0]
    assert gateway.proc is not None
    dest = out / ("gateway-profile.speedscope.json" if fmt == "speedscope" else "gateway-profile.svg")
    try:
        loadgen.run(job_for(gateway, workload, 1.0, None))  # warm-up
        cmd = [
            spy,
            "record",
            "--pid",
            str(gateway.proc.pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            fmt,
            "--output",
            str(dest),
            "--subprocesses",
            *(["--native"] if native else []),  # C frames too: uvloop, the syscalls, httptools, orjson
        ]
        log.info("profiling: %s", " ".join(cmd))
        spy_proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        before = thread_cpu(gateway.proc.pid)
        summary, errors = measure(loadgen, gateway, workload, Plan(1, seconds, 0.2), 0)
        after = thread_cpu(gateway.proc.pid)
        spy_out = spy_proc.communicate(timeout=seconds + 60)[0].decode(errors="replace")
        if spy_proc.returncode != 0:
            log.error("py-spy failed (needs ptrace rights: root or CAP_SYS_PTRACE):\n%s", spy_out[-2000:])
            return 1
    finally:
        loadgen.close()
        stop_all(targets)
    log.info(
        "load while profiling: %.0f req/s, %.0f tokens/s, %.0f events/s, errors %s %s",
        summary["rps"] or 0,
        summary["tokens_per_s"] or 0,
        summary["events_per_s"] or 0,
        summary["errors"],
        errors,
    )
    lines = [
        f"py-spy profile of the gateway, {workload.label}, {seconds:.0f} s: {dest}",
        "",
        "CPU seconds per gateway thread while profiling (/proc):",
    ]
    lines += [f"  {tid} {name}: {cpu - before.get(tid, (name, 0.0))[1]:.2f} s" for tid, (name, cpu) in after.items()]
    if fmt == "speedscope":
        lines += hot_spots(orjson.loads(dest.read_bytes()))
    (out / "gateway-profile.txt").write_text("\n".join(lines) + "\n")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
