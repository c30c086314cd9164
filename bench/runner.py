"""The measurement loop: repetitions x workloads x paths, each a warm-up then a measured run with CPU snapshots."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.paths import REPO, Target
from bench.procs import cpu_seconds, machine_busy_seconds, pinned
from bench.stats import Summary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workload:
    name: str
    stream: bool
    concurrency: int
    max_tokens: int

    @property
    def label(self) -> str:
        kind = f"streamed {self.max_tokens} tok" if self.stream else f"non-streamed {self.max_tokens} tok"
        return f"{kind}, c={self.concurrency}" + (" (TTFT probe)" if self.name.startswith("ttft") else "")


WORKLOADS = (
    Workload("json-c1", False, 1, 16),
    Workload("json-c16", False, 16, 16),
    Workload("sse-c1", True, 1, 256),
    Workload("sse-c16", True, 16, 256),
    Workload("sse-c64", True, 64, 256),
    # TTFT probe: with no pacing, a 256-token stream's first token races the burst of the other 255 through every
    # process on the box; a 1-token stream shows the per-request cost alone, as with real ~10 ms token gaps.
    Workload("ttft-c1", True, 1, 1),
)


@dataclass(frozen=True)
class Plan:
    """How long each run lasts: by time (full runs) or by request count (``--quick``)."""

    reps: int
    duration: float | None
    warmup: float | None
    requests: int | None = None  # per run, at least one per concurrent client; overrides duration (quick mode)
    warmup_requests: int | None = None


@dataclass
class Results:
    """Per workload, per path: one summary per repetition, and the distinct error messages seen."""

    reps: dict[str, dict[str, list[Summary]]] = field(default_factory=dict)
    errors: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def add(self, workload: str, path: str, summary: Summary, samples: Sequence[str]) -> None:
        self.reps.setdefault(workload, {}).setdefault(path, []).append(summary)
        seen = self.errors.setdefault(workload, {}).setdefault(path, [])
        seen += [s for s in samples if s not in seen][: max(0, 5 - len(seen))]


class LoadGen:
    """The load-generator child: one JSON job per line in, one JSON summary per line out."""

    def __init__(self, work: Path, cpus: Sequence[int] | None) -> None:
        self._stderr = (work / "loadgen.log").open("wb")
        self.popen = subprocess.Popen(
            pinned([sys.executable, "-m", "bench.loadgen"], cpus),
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.log_path = work / "loadgen.log"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self.popen.stdin.write(orjson.dumps(job) + b"\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            self._stderr.flush()
            raise RuntimeError(f"load generator died:\n{self.log_path.read_text(errors='replace')[-3000:]}")
        result: dict[str, Any] = orjson.loads(line)
        return result

    def close(self) -> None:
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
        self._stderr.close()


def _job(target: Target, wl: Workload, duration: float | None, requests: int | None) -> dict[str, Any]:
    if requests is not None:
        requests = max(requests, wl.concurrency)  # so every one of the concurrent clients gets to send
    return {
        "url": target.url,
        "stream": wl.stream,
        "concurrency": wl.concurrency,
        "max_tokens": wl.max_tokens,
        "duration": duration,
        "requests": requests,
    }


def measure(loadgen: LoadGen, target: Target, wl: Workload, plan: Plan, upstream_pid: int) -> tuple[Summary, list[str]]:
    """Warm up, then one measured run; CPU of proxy, upstream and load generator is counted over the measured run."""
    warm = loadgen.run(_job(target, wl, plan.warmup, plan.warmup_requests))
    proxy_pid = target.proc.pid if target.proc is not None else None
    before = [cpu_seconds(p) if p else 0.0 for p in (proxy_pid, upstream_pid, loadgen.pid)]
    busy_before = machine_busy_seconds()
    res = loadgen.run(_job(target, wl, plan.duration, plan.requests))
    busy = machine_busy_seconds() - busy_before
    after = [cpu_seconds(p) if p else 0.0 for p in (proxy_pid, upstream_pid, loadgen.pid)]
    proxy_cpu, upstream_cpu, loadgen_cpu = (b - a for a, b in zip(before, after, strict=True))
    done, wall = res["requests"], res["wall_s"]
    summary: Summary = {
        k: res[k]
        for k in (
            "requests",
            "errors",
            "wall_s",
            "rps",
            "tokens_per_s",
            "lat_p50_ms",
            "lat_p99_ms",
            "ttft_p50_ms",
            "ttft_p99_ms",
        )
    }
    summary["warmup_errors"] = warm["errors"]
    summary["proxy_cpu_s_per_1k"] = proxy_cpu / done * 1000 if proxy_pid and done else None
    summary["proxy_cpu_share"] = proxy_cpu / wall if proxy_pid and wall else None
    summary["upstream_cpu_s_per_1k"] = upstream_cpu / done * 1000 if done else None
    summary["upstream_cpu_share"] = upstream_cpu / wall if wall else None
    summary["loadgen_cpu_share"] = loadgen_cpu / wall if wall else None
    # Everyone else on the machine (a shared box): CPU busy time that none of our processes account for.
    summary["other_cpu_share"] = max(0.0, busy - proxy_cpu - upstream_cpu - loadgen_cpu) / wall if wall else None
    return summary, [*warm["error_samples"], *res["error_samples"]]


def run_all(
    targets: Sequence[Target], workloads: Sequence[Workload], plan: Plan, loadgen: LoadGen, upstream_pid: int
) -> Results:
    """Every (repetition, workload, path); the path order rotates per repetition so drift spreads evenly."""
    results = Results()
    for rep in range(plan.reps):
        for wl in workloads:
            shift = rep % len(targets)
            for target in [*targets[shift:], *targets[:shift]]:
                summary, samples = measure(loadgen, target, wl, plan, upstream_pid)
                results.add(wl.name, target.name, summary, samples)
                log.info(
                    "rep %s %-8s %-8s %6.0f req/s  p50 %7.2f ms  errors %s",
                    rep + 1,
                    wl.name,
                    target.name,
                    summary["rps"] or 0.0,
                    summary["lat_p50_ms"] or 0.0,
                    summary["errors"],
                )
    return results
