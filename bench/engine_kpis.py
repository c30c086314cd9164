"""Measure llama.cpp serving KPIs through the llmwatch gateway: TTFT, per-stream and aggregate tokens/s, memory.

    python bench/engine_kpis.py --model MODEL.gguf --label "2-core x86 VM, q4_k_m" [--streams 1,4] [--out DIR]

Starts llama-server (the `cpu` compose profile's flags, but llama.cpp's own prompt-cache default unless
--server-args sets `--cache-ram`) and `llmwatch gateway` in front of it, then for each
concurrency N keeps N streamed chat requests in flight (closed loop, N x --rounds requests) through the gateway
with `ignore_eos` and a fixed `max_tokens`, so every request generates the same number of tokens whatever the
(random) weights say. Prints one markdown table row per N; writes kpis.json and the processes' logs to --out.

- TTFT: client-side, request sent to the first streamed token (p50, p99); the gateway's own ttft_ms beside it.
- ITL: the gap between streamed tokens; TPOT: (last token - first token) / (completion tokens - 1) per request.
- per-stream tok/s: 1 / TPOT, median over requests.
- aggregate tok/s: all completion tokens / the concurrency's wall time.
- req/s: requests completed / wall time at that concurrency (fixed-length answers: a capacity figure).
- memory: llama-server's peak resident set (VmHWM); on a GPU also the process's GPU memory from nvidia-smi.
bench/closed_loop.py's `measure` is the one measuring loop: bench/gpu_check's sweep uses it too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench.*` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.closed_loop import MODEL_NAME, measure
from llmwatch.processes import Child, free_port

CACHE = Path(os.environ.get("LLMWATCH_CACHE", Path.home() / ".cache" / "llmwatch"))


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def gpu_bytes(pid: int) -> int | None:
    """The engine's GPU memory; where nvidia-smi cannot see processes (a VM), all used memory of GPU 0."""
    if shutil.which("nvidia-smi") is None:
        return None

    def query(*args: str) -> list[list[str]]:
        out = subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"], capture_output=True, text=True)
        return [[p.strip() for p in line.split(",")] for line in out.stdout.splitlines() if line.strip()]

    for row in query("--query-compute-apps=pid,used_memory"):
        if row[0] == str(pid):
            return int(row[1]) * 1024 * 1024
    rows = query("--query-gpu=memory.used")
    return int(rows[0][0]) * 1024 * 1024 if rows else None


def access_lines(log_path: Path, count: int) -> list[dict[str, Any]]:
    """The gateway's access-log lines once there are ``count`` (a background thread writes them)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log_path.read_text() if log_path.exists() else ""
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        if len(lines) >= count:
            return lines
        time.sleep(0.1)
    raise SystemExit(f"engine_kpis: the gateway wrote fewer than {count} lines to {log_path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", type=Path, required=True, help="GGUF file (scripts/make-gguf.py makes one)")
    p.add_argument("--label", required=True, help="what ran: hardware and model type, printed in the table")
    p.add_argument("--server", type=Path, default=CACHE / "llama.cpp" / "bin" / "llama-server")
    p.add_argument("--streams", default="1,4", help="comma-separated concurrencies (default %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of N concurrent requests per concurrency")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--server-args", default="", help="extra llama-server flags, e.g. '--n-gpu-layers 99'")
    p.add_argument("--direct", action="store_true", help="also measure llama-server without the gateway, as a baseline")
    p.add_argument("--out", type=Path, default=Path("bench/out/engine-kpis"))
    args = p.parse_args(argv)
    if not args.model.is_file():
        p.error(f"--model {args.model} not found")
    if not args.server.is_file():
        p.error(f"--server {args.server} not found: scripts/install-llama-cpp.sh builds it")
    levels = [int(n) for n in args.streams.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)

    engine_port, gateway_port = free_port(), free_port()
    engine_cmd = [
        str(args.server), "--model", str(args.model), "--host", "127.0.0.1", "--port", str(engine_port),
        "--alias", MODEL_NAME, "--jinja", "--reasoning-format", "deepseek", "--metrics",
        "--kv-unified", "--kv-unified-per-slot", "4096", "--parallel", str(max(levels)),
        "--threads", str(args.threads), *args.server_args.split(),
    ]  # fmt: skip
    access_log = args.out / "access.log"
    access_log.unlink(missing_ok=True)
    gateway_cmd = [
        sys.executable, "-m", "llmwatch.cli", "gateway", "--upstream", f"http://127.0.0.1:{engine_port}",
        "--host", "127.0.0.1", "--port", str(gateway_port), "--log-file", str(access_log), "--no-log-stdout",
    ]  # fmt: skip
    engine = Child(engine_cmd, args.out / "llama-server.log")
    gateway = Child(gateway_cmd, args.out / "gateway.log")
    try:
        engine.wait_http(f"http://127.0.0.1:{engine_port}/health", 600)
        gw = f"http://127.0.0.1:{gateway_port}"
        gateway.wait_http(gw + "/healthz", 60)
        asyncio.run(measure(gw, 1, 1, 16))  # warm-up: first-touch of the weights, thread pools
        logged, rows = 1, []
        for n in levels:
            row = asyncio.run(measure(gw, n, n * args.rounds, args.max_tokens))
            lines = access_lines(access_log, logged + row["requests"])[logged:]
            logged += row["requests"]
            assert all(line["status"] == 200 for line in lines), lines
            row["gateway_ttft_ms_median"] = statistics.median(line["ttft_ms"] for line in lines)
            if args.direct:  # the same load straight to llama-server: the baseline for the gateway's cost
                direct = f"http://127.0.0.1:{engine_port}"
                row["direct"] = asyncio.run(measure(direct, n, n * args.rounds, args.max_tokens))
            rows.append(row)
        rss, gpu = peak_rss_bytes(engine.pid), gpu_bytes(engine.pid)
    finally:
        gateway.stop()
        engine.stop(timeout=30)
    result = {"label": args.label, "model": str(args.model), "max_tokens": args.max_tokens, "rows": rows,
              "peak_rss_bytes": rss, "gpu_bytes": gpu}  # fmt: skip
    (args.out / "kpis.json").write_text(json.dumps(result, indent=2) + "\n")
    mem = f"{rss / 1e9:.2f} GB RSS" + (f", {gpu / 1e9:.2f} GB GPU" if gpu else "")
    print(f"\n{args.label}: prompt {rows[0]['prompt_tokens']} tokens, {args.max_tokens} generated per request, {mem}")
    print("| streams | TTFT median (client / gateway) | TTFT max | tok/s per stream | tok/s aggregate | req/s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['streams']} | {r['ttft_ms_p50']:.0f} / {r['gateway_ttft_ms_median']:.0f} ms "
            f"| {r['ttft_ms_max']:.0f} ms | {r['stream_tok_s_median']:.1f} | {r['aggregate_tok_s']:.1f} "
            f"| {r['req_s']:.2f} |"
        )
    for r in rows:
        if "direct" in r:
            d = r["direct"]
            print(
                f"direct to llama-server, {r['streams']} streams: TTFT {d['ttft_ms_p50']:.0f} ms "
                f"(gateway/direct {r['ttft_ms_p50'] / d['ttft_ms_p50']:.2f}x), "
                f"{d['aggregate_tok_s']:.1f} tok/s aggregate "
                f"(gateway/direct {r['aggregate_tok_s'] / d['aggregate_tok_s']:.2f}x)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
