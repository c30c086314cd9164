"""The end of a run: gather every process's samples, judge them against the SLO file, write the report, exit code.

Runs on the master (or the only process). Workers' samples arrive through Locust's messaging (`collect`); the
last batch of each worker is marked final, and `finish` waits a bounded time for the finals it has not seen.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner

from loadtest import gpu, report, slo
from loadtest.samples import Warmup, distribution, split_warmup, window
from loadtest.stream import Sample

log = logging.getLogger(__name__)
FINAL_WAIT_SECONDS = 10.0

received: dict[str, list[Sample]] = {}
finals: set[str] = set()
sweep_steps: list[dict[str, Any]] = []  # the step/ramp shape's steps: {"rate", "start", "end"}


def reset() -> None:
    received.clear()
    finals.clear()
    sweep_steps.clear()


def collect(node: str, data: dict[str, Any]) -> None:
    received.setdefault(node, []).extend(Sample.from_wire(s) for s in data["samples"])
    if data.get("final"):
        finals.add(node)


def _wait_for_finals(environment: Environment) -> None:
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    deadline = time.monotonic() + FINAL_WAIT_SECONDS
    while set(received) - finals and time.monotonic() < deadline:
        gevent.sleep(0.1)
    if set(received) - finals:
        log.warning("no final samples from workers %s: the report may miss their last requests", set(received) - finals)


def explain_goodput(
    measured: list[Sample], values: dict[str, float | None], target: slo.Target, slos: slo.SloFile
) -> str:
    """Why goodput missed its target, with the numbers: answer length x batch / decode speed, or SLO misses."""
    ok = [s for s in measured if s.ok and not s.empty and s.output_tokens]
    if not ok:
        return "no request completed with tokens in the measured window."
    mean_out = statistics.fmean(s.output_tokens or 0 for s in ok)
    tpots = [s.tpot for s in ok if s.tpot]
    aggregate = values.get("output_tokens_per_second") or 0.0
    parts = []
    if tpots and aggregate:
        stream = 1.0 / statistics.median(tpots)
        capacity = aggregate / mean_out
        parts.append(
            f"Answers averaged {mean_out:.0f} output tokens; one stream decoded at {stream:.0f} tok/s (median), "
            f"{aggregate:.0f} tok/s in aggregate, so about {aggregate / stream:.1f} streams ran at once. "
            f"At that speed the engine completes at most {aggregate:.0f} ÷ {mean_out:.0f} = {capacity:.2f} "
            f"answers/s"
            + (f", below the target of {target.value:g} req/s: it needs shorter answers (--max-tokens), a larger "
               "batch (--max-num-seqs, if the KV cache holds it) or a faster GPU."
               if capacity < target.value else ".")
        )  # fmt: skip
    missed = [s for s in ok if not slo.good(s, slos.per_request)]
    failed = [s for s in measured if not s.ok or s.empty]
    span = window(measured)
    parts.append(
        f"{len(missed)} of {len(ok)} completed requests missed a per-request SLO, {len(failed)} failed or were empty; "
        f"{len(measured) / span if span else 0:.2f} req/s were sent and judged."
    )
    return " ".join(parts)


def finish(environment: Environment) -> int:
    """Judge the run; write summary.json and report.html; return the exit code (1 on any SLO miss)."""
    options = environment.parsed_options
    assert options is not None
    _wait_for_finals(environment)
    samples = [s for batch in received.values() for s in batch]
    try:
        slos = slo.load(Path(options.slo))
    except slo.SloError as exc:
        sys.stderr.write(f"--slo: {exc}\n")
        return 2
    warm = Warmup(
        slos.warmup.requests if options.warmup_requests < 0 else options.warmup_requests,
        slos.warmup.seconds if options.warmup_seconds < 0 else options.warmup_seconds,
    )
    warmup, measured = split_warmup(samples, warm)
    memory, memory_note = gpu.memory(options.prometheus, window(samples) + 5)
    values = slo.measure(measured, slos, memory)
    notes = {"gpu_memory_bytes": memory_note}
    goodput = slos.slos.get("goodput_requests_per_second")
    reached = values["goodput_requests_per_second"]
    if goodput and reached is not None and not goodput.met(reached):
        notes["goodput_requests_per_second"] = explain_goodput(measured, values, goodput, slos)
    rows = slo.rows(slos, values, notes)
    if not measured:
        rows.append({"slo": "requests", "what": "completed requests after warm-up", "target": "≥ 1",
                     "measured": 0, "measured_text": "0", "status": "FAIL", "note": "nothing to judge"})  # fmt: skip
    tpots = [s.tpot for s in measured if s.ok and s.tpot]
    summary: dict[str, Any] = {
        "host": environment.host,
        "model": options.model or None,
        "slo_file": str(options.slo),
        "mode": {"rate": options.rate or None, "users": options.num_users, "max_tokens": options.max_tokens or None},
        "requests": {
            "total": len(samples),
            "warmup": len(warmup),
            "measured": len(measured),
            "succeeded": sum(s.ok and not s.empty for s in measured),
            "errors": sum(not s.ok for s in measured),
            "empty": sum(s.ok and s.empty for s in measured),
            "good": sum(slo.good(s, slos.per_request) for s in measured),
        },
        "window_seconds": window(measured),
        "seconds": {
            "ttft": distribution([s.ttft for s in measured if s.ok and s.ttft is not None]),
            "tpot": distribution(tpots),
            "itl": distribution([g for s in measured if s.ok for g in s.itl]),
            "e2e": distribution([s.e2e for s in measured if s.ok]),
        },
        "output_tokens": distribution([s.output_tokens for s in measured if s.ok and s.output_tokens is not None]),
        "stream_decode_tokens_per_second": {
            "median": 1.0 / statistics.median(tpots) if tpots else None,
            "gpu": options.gpu or None,
            "ceiling": gpu.stream_ceiling(options.gpu),
        },
        "gpu_memory": {"bytes": memory, "measured": memory_note},
        "slos": rows,
        "sweep": report.sweep_rows(sweep_steps, measured, slos),
        "passed": all(r["status"] != "FAIL" for r in rows),
    }
    out = Path(options.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (out / "report.html").write_text(report.html(summary, measured, slos), encoding="utf-8")
    sys.stdout.write(report.text(summary) + f"\nreport: {out / 'report.html'}   summary: {out / 'summary.json'}\n")
    sys.stdout.flush()
    return 0 if summary["passed"] else 1
