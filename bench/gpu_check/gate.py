"""The load test's gate, as `make load` runs it, with the card's peak memory and the engine's gauges."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from loadtest import slo

from bench.gpu_check.record import Record
from bench.gpu_check.samplers import GB, EngineSampler, MemorySampler
from bench.paths import REPO


def gate(rec: Record, gateway: str, key: str, args: argparse.Namespace, sampler: MemorySampler | None) -> None:
    """The load test's gate, as `make load` runs it, with the card's peak memory over the run."""
    report_dir = args.out / "loadtest"
    locustfile = REPO / "loadtest" / "locustfile.py"
    flags = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--host", gateway, "--headless",
        "-u", str(args.gate_users), "-r", str(args.gate_users), "-t", f"{args.gate_seconds}s",
        "--rate", str(args.gate_rate), "--stop-timeout", "120", "--report-dir", str(report_dir),
        "--html", str(report_dir / "locust.html"), "--csv", str(report_dir / "locust"), "--only-summary",
        "--max-tokens", str(args.max_tokens), "--max-num-seqs", str(args.batch), "--seed", "1",
    ]  # fmt: skip
    if args.gpu_class:
        flags += ["--gpu", args.gpu_class]
    reasoning_only_option = "--accept-reasoning-only" in (REPO / "loadtest" / "flags.py").read_text()
    if reasoning_only_option:
        flags.append("--accept-reasoning-only")
    rec.data["facts"]["gate_accepts_reasoning_only"] = reasoning_only_option
    if sampler:
        sampler.reset()
    env = {**os.environ, "LOADTEST_API_KEY": key, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    engine_peaks = EngineSampler(args.engine_url)
    try:
        done = subprocess.run(flags, capture_output=True, text=True, cwd=REPO, env=env,
                              timeout=args.gate_seconds + 300)  # fmt: skip
    finally:
        peaks = engine_peaks.stop()
    (args.out / "loadtest.log").write_text(done.stdout + done.stderr)
    summary_file = report_dir / "summary.json"
    if not summary_file.exists():
        raise RuntimeError(f"the load test wrote no summary (exit {done.returncode}): {done.stderr[-1500:]}")
    summary = json.loads(summary_file.read_text())
    peak = sampler.peak if sampler else None
    target = slo.load().slos.get("gpu_memory_bytes")
    memory_row = {
        "slo": "gpu_memory_bytes (sampled by this check)",
        "target": target.text() if target else "",
        "measured_text": "not measured (no NVIDIA GPU)" if peak is None else f"{peak / GB:.2f} GB",
        "status": "" if peak is None or target is None else ("PASS" if target.met(peak) else "FAIL"),
        "note": "peak used memory of the whole card during the gate (NVML or nvidia-smi, every 0.5 s)",
    }
    rec.data["gate"] = {"exit_code": done.returncode, "rate": args.gate_rate, "seconds": args.gate_seconds,
                        "users": args.gate_users, "summary": summary, "gpu_memory_row": memory_row,
                        "engine_peaks": peaks}  # fmt: skip
