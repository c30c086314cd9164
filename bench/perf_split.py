"""``overhead.py --perf``: where each proxy's CPU goes, the kernel's network work or its own code, per streamed event
(per request for a non-streamed workload), from Linux perf's samples of the proxy under one workload
(``--profile-workload``).

The kernel's part is what no proxy code can shave: the TCP send of each event to the client, the receive from the
engine and the wait for the next one. Beside nginx's split in the same run, it shows how far the gateway's own code
is from a proxy written in C. The CPU seconds come from /proc; perf's samples only divide them, so the sampling
rate does not matter. perf must be installed (Debian: linux-perf) and allowed to sample the proxy (root, or
kernel.perf_event_paranoid at 1 or below).
"""

from __future__ import annotations

import logging
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.paths import start_all, stop_all
from bench.procs import cpu_seconds, tree
from bench.runner import LoadGen, Workload, job_for

log = logging.getLogger(__name__)

KERNEL = "[kernel.kallsyms]"
# Kernel entry points (perf's symbol names) of the system calls a proxy makes per event; their callees included.
SYSCALLS = {
    "send": ("ksys_write", "do_writev", "__sys_sendto", "__sys_sendmsg"),
    "receive": ("ksys_read", "do_readv", "__sys_recvfrom", "__sys_recvmsg"),
    "wait": ("do_epoll_wait",),
}
# The proxy's own code, by the file (DSO) its samples fall in: a name's prefix.
USER = {
    "interpreter": ("libpython",),
    "event loop": ("loop.cpython",),  # uvloop
    "HTTP parser": ("parser.cpython", "url_parser.cpython"),  # httptools
    "JSON": ("orjson.",),
    "C library": ("libc.so", "libc-"),
    "nginx": ("nginx",),
}
COLUMNS = [*(f"kernel: {k}" for k in SYSCALLS), "kernel: other", *USER, "other"]
_DSO_LINE = re.compile(r"^\s*([\d.]+)%\s+(\d+)\s+(\S.*?)\s*$")
_SYM_LINE = re.compile(r"^\s*([\d.]+)%\s+[\d.]+%\s+\d+\s+\[k\]\s+(\S+)\s*$")


@dataclass(frozen=True)
class Split:
    """A proxy's perf samples, in COLUMNS' groups (shares of all its samples, summing to 1)."""

    samples: int
    shares: dict[str, float]


def split_of(by_dso: str, by_symbol: str) -> Split:
    """The groups of ``perf report --sort dso`` (self samples) and ``--children --sort sym`` (kernel entry points)."""
    dsos: dict[str, int] = {}
    for line in by_dso.splitlines():
        if (m := _DSO_LINE.match(line)) and not line.lstrip().startswith("#"):
            dsos[m.group(3)] = dsos.get(m.group(3), 0) + int(m.group(2))
    total = sum(dsos.values())
    if total == 0:
        raise ValueError("perf report has no samples")
    children = {m.group(2): float(m.group(1)) / 100 for line in by_symbol.splitlines() if (m := _SYM_LINE.match(line))}
    shares = {f"kernel: {group}": sum(children.get(s, 0.0) for s in syms) for group, syms in SYSCALLS.items()}
    shares["kernel: other"] = max(0.0, dsos.get(KERNEL, 0) / total - sum(shares.values()))
    for group, prefixes in USER.items():
        shares[group] = sum(n for dso, n in dsos.items() if dso.startswith(prefixes)) / total
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    return Split(total, shares)


def report(perf: str, data: Path) -> Split:
    """Read a ``perf record`` file."""
    base = [perf, "report", "-i", str(data), "--stdio", "-g", "none", "-n"]
    by_dso = subprocess.run([*base, "--no-children", "--sort", "dso"], capture_output=True, text=True, check=True)
    by_sym = subprocess.run([*base, "--children", "--sort", "sym"], capture_output=True, text=True, check=True)
    return split_of(by_dso.stdout, by_sym.stdout)


def table(rows: Sequence[tuple[str, float, Split]], unit: str) -> list[str]:
    """One line per proxy: its CPU µs per ``unit`` and that split into COLUMNS."""
    lines = [
        f"| path | CPU µs per {unit} | " + " | ".join(COLUMNS) + " |",
        "|---|---:|" + "---:|" * len(COLUMNS),
    ]
    for name, us, split in rows:
        cells = " | ".join(f"{us * split.shares[c]:.1f}" if split.shares[c] >= 0.005 else "–" for c in COLUMNS)
        lines.append(f"| {name} | {us:.1f} | {cells} |")
    return lines


def run(
    upstream_ports: Sequence[int],
    workload: Workload,
    names: Sequence[str],
    work: Path,
    out: Path,
    seconds: float,
    proxy_cpus: Sequence[int] | None,
    load_cpus: Sequence[int] | None,
) -> int:
    perf = shutil.which("perf")
    if perf is None:
        log.error("--perf: Linux perf not found (Debian: apt-get install linux-perf)")
        return 2
    proxies = [n for n in names if n != "direct"]
    targets = start_all(proxies, upstream_ports[: workload.engines], work, proxy_cpus)
    loadgen = LoadGen(work, load_cpus)
    unit = "event" if workload.stream else "request"
    rows: list[tuple[str, float, Split]] = []
    try:
        for target in targets:
            assert target.proc is not None
            loadgen.run(job_for(target, workload, 1.0, None))  # warm-up
            data = work / f"{target.name}.perf.data"
            pids = ",".join(map(str, tree(target.proc.pid)))
            cmd = [perf, "record", "-e", "cpu-clock", "-F", "1999", "-g", "-o", str(data), "-p", pids]
            rec = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)  # perf attaches
            if rec.poll() is not None:
                why = rec.stderr.read() if rec.stderr else ""
                log.error("--perf: perf record failed (root, or kernel.perf_event_paranoid <= 1):\n%s", why)
                return 1
            before = cpu_seconds(target.proc.pid)
            res = loadgen.run(job_for(target, workload, seconds, None))
            cpu = cpu_seconds(target.proc.pid) - before
            rec.send_signal(signal.SIGINT)
            rec.communicate(timeout=120)
            units = res["events"] if workload.stream else res["requests"]
            rows.append((target.name, cpu / units * 1e6, report(perf, data)))
            log.info("%s: %d %ss, %.2f CPU s", target.name, units, unit, cpu)
    finally:
        loadgen.close()
        stop_all(targets)
    lines = [
        f"# Where the proxies' CPU goes: {workload.label}, {seconds:g} s each (Linux perf)",
        "",
        f"CPU µs per {unit} of each proxy's processes (/proc), divided by perf's samples: the kernel's system calls "
        "(send to the client, receive from the engine, wait for the next event; their TCP work included), the rest "
        "of the kernel, and the proxy's own code by the file it runs in.",
        "",
        *table(rows, unit),
        "",
        "Samples: " + ", ".join(f"{name} {split.samples}" for name, _, split in rows) + ".",
    ]
    (out / "perf-split.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
