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

from loadtest import answers, gpu, report, slo
from loadtest.goodput import explain_goodput
from loadtest.samples import Warmup, distribution, split_warmup, window
from loadtest.stream import Sample

log = logging.getLogger(__name__)

received: dict[str, list[Sample]] = {}
finals: set[str] = set()
late: dict[str, int] = {}  # open-loop arrivals that found no free user, per process
dropped: dict[str, int] = {}  # open-loop arrivals never sent (still waiting when the run stopped), per process
sweep_steps: list[dict[str, Any]] = []  # the step/ramp shape's steps: {"rate", "start", "end"}


def reset() -> None:
    received.clear()
    finals.clear()
    late.clear()
    dropped.clear()


def collect(node: str, data: dict[str, Any]) -> None:
    received.setdefault(node, []).extend(Sample.from_wire(s) for s in data["samples"])
    late[node] = int(data.get("late", 0))
    dropped[node] = int(data.get("dropped", 0))
    if data.get("final"):
        finals.add(node)


def wait_for_finals(workers: set[str], timeout: float) -> None:
    """Wait (bounded) until each worker has sent its last batch of samples."""
    deadline = time.monotonic() + timeout
    while workers - finals and time.monotonic() < deadline:
        gevent.sleep(0.1)
    if workers - finals:
        log.warning("no last samples from workers %s: the report misses their last requests", workers - finals)


def finish(environment: Environment) -> int:
    """Judge the run; write summary.json and report.html; return the exit code (1 on any SLO miss)."""
    options = environment.parsed_options
    assert options is not None
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
        notes["goodput_requests_per_second"] = explain_goodput(
            measured, values, goodput, slos, options.max_num_seqs,
            rate=options.rate, late=sum(late.values()), unsent=sum(dropped.values()),
        )  # fmt: skip
    rows = slo.rows(slos, values, notes)
    if not measured:
        rows.append({"slo": "requests", "what": "completed requests after warm-up", "target": "≥ 1",
                     "measured": 0, "measured_text": "0", "status": "FAIL", "note": "nothing to judge"})  # fmt: skip
    tpots = [s.tpot for s in measured if s.ok and s.tpot]
    kinds = answers.counts(measured)
    summary: dict[str, Any] = {
        "host": environment.host,
        "model": options.model or None,
        "slo_file": shown_path(Path(options.slo)),
        "mode": {
            "rate": options.rate or None,
            "late_arrivals": sum(late.values()),
            "unsent_arrivals": sum(dropped.values()),
            "users": options.num_users,
            "max_tokens": options.max_tokens or None,
        },
        "requests": {
            "total": len(samples),
            "warmup": len(warmup),
            "measured": len(measured),
            "succeeded": sum(s.ok and not s.empty for s in measured),
            "errors": sum(not s.ok for s in measured),
            "empty": sum(s.ok and s.empty for s in measured),
            "good": sum(slo.good(s, slos.per_request) for s in measured),
            "answers": kinds,
            "answers_note": answers.note(kinds, bool(getattr(options, "accept_reasoning_only", False))),
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
    warm_ids = {id(s) for s in warmup}
    with (out / "samples.jsonl").open("w") as raw:  # every request, warm-up included, for your own analysis
        for sample in sorted(samples, key=lambda s: s.start):
            raw.write(json.dumps({**sample.to_wire(), "warmup": id(sample) in warm_ids}) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (out / "report.html").write_text(report.html(summary, measured, slos), encoding="utf-8")
    sys.stdout.write(report.text(summary) + f"\nreport: {out / 'report.html'}   summary: {out / 'summary.json'}\n")
    sys.stdout.flush()
    return 0 if summary["passed"] else 1


def shown_path(path: Path) -> str:
    """``path`` as a report shows it: relative to the working directory when inside it, so no machine paths."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
