"""The measurement loop: repetitions x workloads x paths, each a warm-up then a measured run with CPU snapshots."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.paths import REPO, Target, why_skipped
from bench.procs import cpu_seconds, machine_busy_seconds, pinned
from bench.stats import Summary

log = logging.getLogger(__name__)


# Events a stream carries besides its token chunks: the role chunk, the usage chunk and [DONE] (bench.upstream).
EXTRA_EVENTS = 3


@dataclass(frozen=True)
class Workload:
    name: str
    stream: bool
    concurrency: int  # streams in flight in all, spread evenly over the engines
    max_tokens: int
    tick_ms: float | None = None  # paced: each stream gets one token per tick, as from an engine's decode step
    engines: int = 1  # upstream engines (bench.upstream listeners); a proxy gets them all as its upstream list

    @property
    def label(self) -> str:
        kind = f"streamed {self.max_tokens} tok" if self.stream else f"non-streamed {self.max_tokens} tok"
        label = f"{kind}, c={self.concurrency}" + (" (TTFT probe)" if self.name.startswith("ttft") else "")
        if self.engines > 1:
            label += f" over {self.engines} engines ({self.concurrency // self.engines} streams each)"
        if self.tick_ms is not None:
            label += f", one token per {self.tick_ms:g} ms per stream"
        return label

    @property
    def offered_events_per_s(self) -> float | None:
        """Events a second the engines send while every stream is busy (paced workloads only)."""
        if self.tick_ms is None or not self.stream:
            return None
        per_stream = (self.max_tokens + EXTRA_EVENTS) / (self.max_tokens * self.tick_ms / 1000.0)
        return self.concurrency * per_stream

    def run_seconds(self, seconds: float | None) -> float | None:
        """A paced run lasts at least two whole answers per stream, so it measures steady decoding."""
        if seconds is None or self.tick_ms is None:
            return seconds
        return max(seconds, 2 * self.max_tokens * self.tick_ms / 1000.0)


WORKLOADS = (
    Workload("json-c1", False, 1, 16),
    Workload("json-c16", False, 16, 16),
    Workload("sse-c1", True, 1, 256),
    Workload("sse-c16", True, 16, 256),
    Workload("sse-c64", True, 64, 256),
    # TTFT probe: with no pacing, a 256-token stream's first token races the burst of the other 255 through every
    # process on the box; a 1-token stream shows the per-request cost alone, as with real ~10 ms token gaps.
    Workload("ttft-c1", True, 1, 1),
    # An engine's decode step: 256 streams, one token each per 10 ms step, so a proxy makes one read and one write per
    # event (25,900 events/s offered), as in front of vLLM, where the unpaced workloads let it batch events per read.
    Workload("sse-rate", True, 256, 256, tick_ms=10.0),
    # Four engines at full rate behind one proxy (least-in-flight): 4 x 64 streams, 5 ms steps, 51,800 events/s.
    Workload("sse-4eng", True, 256, 256, tick_ms=5.0, engines=4),
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
    """Per workload, per path: one summary per repetition, the distinct error messages seen, and why a path that
    could not take a workload was left out of it."""

    reps: dict[str, dict[str, list[Summary]]] = field(default_factory=dict)
    errors: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)

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


def job_for(target: Target, wl: Workload, duration: float | None, requests: int | None) -> dict[str, Any]:
    """The load generator's job for one run of ``wl`` against ``target``."""
    if requests is not None:
        requests = max(requests, wl.concurrency)  # so every one of the concurrent clients gets to send
    return {
        "urls": list(target.urls),
        "stream": wl.stream,
        "concurrency": wl.concurrency,
        "max_tokens": wl.max_tokens,
        "tick_ms": wl.tick_ms,
        "duration": wl.run_seconds(duration),
        "requests": requests,
    }


def measure(loadgen: LoadGen, target: Target, wl: Workload, plan: Plan, upstream_pid: int) -> tuple[Summary, list[str]]:
    """Warm up, then one measured run; CPU of proxy, upstream and load generator is counted over the measured run."""
    warm = loadgen.run(job_for(target, wl, plan.warmup, plan.warmup_requests))
    proxy_pid = target.proc.pid if target.proc is not None else None
    before = [cpu_seconds(p) if p else 0.0 for p in (proxy_pid, upstream_pid, loadgen.pid)]
    busy_before = machine_busy_seconds()
    res = loadgen.run(job_for(target, wl, plan.duration, plan.requests))
    busy = machine_busy_seconds() - busy_before
    after = [cpu_seconds(p) if p else 0.0 for p in (proxy_pid, upstream_pid, loadgen.pid)]
    proxy_cpu, upstream_cpu, loadgen_cpu = (b - a for a, b in zip(before, after, strict=True))
    done, wall, events = res["requests"], res["wall_s"], res["events"]
    summary: Summary = {
        k: res[k]
        for k in (
            "requests",
            "errors",
            "wall_s",
            "rps",
            "tokens_per_s",
            "events_per_s",
            "lat_p50_ms",
            "lat_p99_ms",
            "ttft_p50_ms",
            "ttft_p99_ms",
        )
    }
    summary["warmup_errors"] = warm["errors"]
    summary["offered_events_per_s"] = wl.offered_events_per_s
    summary["proxy_cpu_s_per_1k"] = proxy_cpu / done * 1000 if proxy_pid and done else None
    summary["proxy_cpu_us_per_event"] = proxy_cpu / events * 1e6 if proxy_pid and events else None
    summary["proxy_cpu_share"] = proxy_cpu / wall if proxy_pid and wall else None
    summary["upstream_cpu_s_per_1k"] = upstream_cpu / done * 1000 if done else None
    summary["upstream_cpu_share"] = upstream_cpu / wall if wall else None
    summary["loadgen_cpu_share"] = loadgen_cpu / wall if wall else None
    # Everyone else on the machine (a shared box): CPU busy time that none of our processes account for.
    summary["other_cpu_share"] = max(0.0, busy - proxy_cpu - upstream_cpu - loadgen_cpu) / wall if wall else None
    return summary, [*warm["error_samples"], *res["error_samples"]]


def skipped_by(workloads: Sequence[Workload], names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Per workload, the paths that sit it out, and why (``paths.why_skipped``)."""
    out: dict[str, dict[str, str]] = {}
    for wl in workloads:
        for name in names:
            why = why_skipped(name, wl.tick_ms is not None, wl.engines)
            if why is not None:
                out.setdefault(wl.name, {})[name] = why
    return out


def run_all(
    targets: Mapping[int, Sequence[Target]],
    workloads: Sequence[Workload],
    plan: Plan,
    loadgen: LoadGen,
    upstream_pid: int,
    skipped: Mapping[str, dict[str, str]],
) -> Results:
    """Every (repetition, workload, path); the path order rotates per repetition so drift spreads evenly.

    ``targets`` holds, per number of engines, the paths started in front of that many (``paths.start_all``); a
    path that sits a workload out (``skipped``, from ``skipped_by``) is not run on it.
    """
    results = Results(skipped=dict(skipped))
    for rep in range(plan.reps):
        for wl in workloads:
            out = results.skipped.get(wl.name, {})
            runnable = [t for t in targets[wl.engines] if t.name not in out]
            shift = rep % len(runnable)
            for target in [*runnable[shift:], *runnable[:shift]]:
                summary, samples = measure(loadgen, target, wl, plan, upstream_pid)
                results.add(wl.name, target.name, summary, samples)
                log.info(
                    "rep %s %-8s %-8s %6.0f req/s %7.0f events/s  p50 %7.2f ms  errors %s",
                    rep + 1,
                    wl.name,
                    target.name,
                    summary["rps"] or 0.0,
                    summary["events_per_s"] or 0.0,
                    summary["lat_p50_ms"] or 0.0,
                    summary["errors"],
                )
    return results
