"""Capacity benchmark: N concurrent paced streams against a real `llmwatch sim` process on 127.0.0.1.

    python -m bench.sim_capacity --streams 500 --max-tokens 200 --gpu-profile rtx4090 --max-num-seqs 512

Prints delivered tokens/s against what the engine model predicts for the same batch (ratio ~1.0: the simulator
keeps pace; below: Python is the bottleneck), the simulator's CPU use, and a 4-stream baseline from the same run.
The client is raw asyncio sockets so that it costs less CPU than the server it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procs import cpu_seconds
from llmwatch.processes import free_port, running
from llmwatch.vllm.gpus import GPUS
from llmwatch.vllm.model import SERVE_FLAGS

_USAGE = re.compile(rb'"completion_tokens":(\d+)')


@dataclass
class Result:
    streams: int
    seconds: float
    tokens: int
    complete: int
    cpu_seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


async def _stream(port: int, max_tokens: int, index: int) -> tuple[int, bool]:
    body = (
        b'{"messages":[{"role":"user","content":"bench question %d"}],"max_tokens":%d,"stream":true,'
        b'"stream_options":{"include_usage":true}}' % (index, max_tokens)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    tail = b""
    while chunk := await reader.read(65536):
        tail = (tail + chunk)[-600:]
    writer.close()
    found = _USAGE.findall(tail)
    return (int(found[-1]) if found else 0), b"[DONE]" in tail


async def _run(port: int, streams: int, max_tokens: int, pid: int) -> Result:
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    results = await asyncio.gather(*(_stream(port, max_tokens, i) for i in range(streams)))
    seconds = time.perf_counter() - t0
    return Result(streams, seconds, sum(n for n, _ in results), sum(ok for _, ok in results), cpu_seconds(pid) - cpu0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sim_capacity")
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--gpu-profile", default="rtx4090", choices=sorted(GPUS))
    parser.add_argument("--max-num-seqs", type=int, default=512)
    args = parser.parse_args(argv)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "llmwatch.cli",
        "sim",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--startup-seconds",
        "0",
        "--warmup-requests",
        "0",
        "--gpu-profile",
        args.gpu_profile,
        "--max-num-seqs",
        str(args.max_num_seqs),
        "--max-num-batched-tokens",
        "16384",
        *SERVE_FLAGS,
        "--log-level",
        "WARNING",
    ]
    with (
        tempfile.TemporaryDirectory() as tmp,
        running(cmd, Path(tmp) / "sim.log", f"http://127.0.0.1:{port}/health") as sim,
    ):
        base = asyncio.run(_run(port, 4, args.max_tokens, sim.pid))
        load = asyncio.run(_run(port, args.streams, args.max_tokens, sim.pid))
    profile = GPUS[args.gpu_profile]
    for r in (base, load):
        context = r.streams * (30 + args.max_tokens // 2)
        modelled = r.streams / profile.step_seconds(r.streams, context)
        print(
            f"{r.streams:4d} streams: {r.complete}/{r.streams} complete, {r.tokens} tokens in {r.seconds:.2f}s = "
            f"{r.tokens_per_s:8.0f} tok/s (decode model {modelled:8.0f} tok/s), per stream "
            f"{r.tokens_per_s / r.streams:6.1f} tok/s, sim CPU {r.cpu_seconds / r.seconds:5.0%}"
        )
    print(f"ratio load/baseline aggregate: {load.tokens_per_s / base.tokens_per_s:.1f}x")
    return 0 if load.complete == load.streams else 1


if __name__ == "__main__":
    raise SystemExit(main())
