"""How many concurrent streams one Locust process carries before it distorts what it measures.

`python -m loadtest.ceiling --streams 50,200,500 --seconds 30` starts a simulator (paced at ~20 tok/s per stream)
behind a gateway for each stream count, runs one Locust process (closed loop, N users), and compares Locust's TTFT
with the gateway's access-log TTFT for the same requests (by X-Request-Id). While Locust keeps up the two agree;
once it is CPU-bound its own TTFT grows. Prints one row per count, and the ratio against the smallest count's row.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llmwatch.processes import Child, free_port
from llmwatch.vllm.gpus import GPUS
from llmwatch.vllm.model import SERVE_FLAGS

REPO = Path(__file__).resolve().parents[1]
WARMUP_SECONDS = 8  # the ramp (users / 5 per second) and connection set-up
CONTEXT_TOKENS = 150  # prompt + half an answer, per stream: the KV read of one decode step


def sim_speed(streams: int, tok_s: float) -> float:
    """--speed that paces each of ``streams`` concurrent streams at ``tok_s`` on the h100 profile."""
    step = GPUS["h100"].step_seconds(streams, streams * CONTEXT_TOKENS)
    return step * tok_s


def measure(
    streams: int, seconds: float, tok_s: float, max_tokens: int, work: Path, extra: list[str]
) -> dict[str, float]:
    sim_port, gw_port = free_port(), free_port()
    access = work / "access.log"
    sim = Child([
        sys.executable, "-m", "llmwatch.cli", "sim", "--host", "127.0.0.1", "--port", str(sim_port),
        "--startup-seconds", "0", "--warmup-requests", "0", "--gpu-profile", "h100", *SERVE_FLAGS,
        "--max-num-seqs", str(streams + 8), "--speed", f"{sim_speed(streams, tok_s):.6f}", "--log-level", "WARNING",
    ], work / "sim.log")  # fmt: skip
    gateway = Child([
        sys.executable, "-m", "llmwatch.cli", "gateway", "--upstream", f"http://127.0.0.1:{sim_port}", "--host",
        "127.0.0.1", "--port", str(gw_port), "--log-file", str(access), "--no-log-stdout",
    ], work / "gateway.log")  # fmt: skip
    try:
        sim.wait_http(f"http://127.0.0.1:{sim_port}/health", 30)
        gateway.wait_http(f"http://127.0.0.1:{gw_port}/healthz", 30)
        before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
        locust = subprocess.Popen([
            sys.executable, "-m", "locust", "-f", str(REPO / "loadtest" / "locustfile.py"), "--host",
            f"http://127.0.0.1:{gw_port}", "--headless", "--only-summary", "-u", str(streams), "-r",
            str(max(1, streams // 5)), "-t", f"{seconds:.0f}s", "--stop-timeout", "60", "--max-tokens",
            str(max_tokens), "--prompt-tags", "short", "--warmup-seconds", str(WARMUP_SECONDS),
            "--report-dir", str(work / "out"),
            *extra,
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)  # fmt: skip
        locust.wait(seconds + 120)
        elapsed = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # only Locust has been waited for
        locust_cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / elapsed
    finally:
        gateway.stop()
        sim.stop()
    samples = [json.loads(line) for line in (work / "out" / "samples.jsonl").read_text().splitlines()]
    measured = [s for s in samples if not s["warmup"] and s["ok"] and s["ttft"] is not None]
    logged = {}
    for line in access.read_text().splitlines():
        entry = json.loads(line)
        logged[entry["request_id"]] = entry
    pairs = [(s["ttft"], logged[s["request_id"]]["ttft_ms"] / 1000) for s in measured if s["request_id"] in logged]
    # Steady state: from the end of the warm-up to the end of the run (not the ramp, not the drain afterwards).
    begin = min(s["start"] for s in samples) + WARMUP_SECONDS
    end = min(s["start"] for s in samples) + seconds
    tokens = 0
    busy = 0.0
    for s in samples:
        if s["ttft"] is not None:
            at = s["start"] + s["ttft"]
            for gap in [0.0, *s["itl"]]:
                at += gap
                tokens += begin <= at < end
        busy += max(0.0, min(end, s["start"] + s["e2e"]) - max(begin, s["start"]))
    span = end - begin
    return {
        "streams": streams,
        "locust_cpu": locust_cpu,
        "requests": len(measured),
        "in_flight": busy / span,
        "chunks_per_s": tokens / span,
        "stream_tok_s": statistics.median(1 / s["tpot"] for s in measured if s["tpot"]),
        "ttft_locust_ms": statistics.median(a for a, _ in pairs) * 1000,
        "ttft_gateway_ms": statistics.median(b for _, b in pairs) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="50,200,500", help="Concurrent streams (Locust users) to try.")
    parser.add_argument("--seconds", type=float, default=30.0, help="Run time per count.")
    parser.add_argument("--tok-s", type=float, default=20.0, help="Decode pace of each stream.")
    parser.add_argument("--max-tokens", type=int, default=200, help="Answer length (tokens).")
    args, extra = parser.parse_known_args()  # anything else goes to Locust, e.g. --no-itl-events
    rows = []
    for streams in (int(n) for n in args.streams.split(",")):
        with tempfile.TemporaryDirectory(prefix="llmwatch-ceiling-") as tmp:
            rows.append(measure(streams, args.seconds, args.tok_s, args.max_tokens, Path(tmp), extra))
        r = rows[-1]
        ratio = r["ttft_locust_ms"] / r["ttft_gateway_ms"]
        base = rows[0]["chunks_per_s"]
        sys.stdout.write(
            f"{r['streams']:>5} users: {r['in_flight']:6.0f} streams in flight, {r['chunks_per_s']:7.0f} chunks/s "
            f"({r['chunks_per_s'] / base:4.1f}x the first row), {r['stream_tok_s']:5.1f} tok/s per stream, "
            f"Locust CPU {r['locust_cpu']:4.0%} of a core, load average {os.getloadavg()[0]:.1f}, "
            f"TTFT median Locust {r['ttft_locust_ms']:7.1f} ms / gateway {r['ttft_gateway_ms']:7.1f} ms = "
            f"{ratio:5.3f} ({'within' if ratio <= 1.05 else 'OVER'} 5%)\n"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
