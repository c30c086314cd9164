"""The KPI sweep: closed-loop cells alternated direct, gateway, gateway, direct at each concurrency (with a baseline
gateway: direct, gateway, baseline, baseline, gateway, direct), each gateway cell with its CPU per forwarded event,
and every cell with the engine's front processes' share of a core (vLLM's API servers; its engine core is a child
process and not counted): the vLLM processes that can saturate a CPU core before the GPU is busy."""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Any

import yaml
from loadtest import prompts as load_prompts

from bench.closed_loop import measure
from bench.gpu_check.record import Record, say
from bench.paths import REPO
from bench.procs import cpu_seconds, tree

# With --api-server-count above 1, vLLM titles each API-server process VLLM::APIServer_<i> under an idle launcher; with
# one, the engine's own process serves the API (and llama-server is one process). The title's pattern is the one the
# stack's vllm-processes watches (process-exporter/vllm.yml says where vLLM sets it), matched as process-exporter does
# (config/config.go, cmdlineMatcher: the command line's words joined by spaces).
_CONFIG = yaml.safe_load((REPO / "process-exporter/vllm.yml").read_text())
API_SERVER_TITLE = re.compile(_CONFIG["process_names"][0]["cmdline"][0])

# Events of one streamed answer besides its tokens: vLLM's role chunk, the usage chunk and `data: [DONE]`.
EXTRA_EVENTS = 3


def sweep(
    rec: Record, direct: str, gateways: dict[str, tuple[str, int]], key: str, args: argparse.Namespace, engine_pid: int
) -> None:
    """Cells alternated (direct, each gateway, then back) at each concurrency; the same prompts and answer length.

    ``gateways``: path name -> (URL, pid); a gateway cell records its process's CPU seconds per forwarded event.
    ``engine_pid``: the engine's own process; every cell records the busiest front process's share of a core.
    """
    prompt_list = [p.messages for p in load_prompts.load()]
    auth = {"Authorization": f"Bearer {key}"}
    paths = ["direct", *gateways]
    for n in args.streams:
        requests = max(args.min_requests, n * args.requests_per_stream)
        cells: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
        for path in [*paths, *reversed(paths)]:
            url, headers = (direct, None) if path == "direct" else (gateways[path][0], auth)
            pid = gateways[path][1] if path != "direct" else None
            before = cpu_seconds(pid) if pid else 0.0
            fronts = front_processes(engine_pid)
            engine_before = [cpu_seconds(p, descendants=False) for p in fronts]
            cell = asyncio.run(measure(url, n, requests, args.max_tokens, prompt_list, headers))
            engine_cpu = [cpu_seconds(p, descendants=False) - b for p, b in zip(fronts, engine_before, strict=True)]
            cell["engine_front_cpu_share"] = max(engine_cpu) / cell["seconds"]
            cell["engine_front_processes"] = len(fronts)
            if pid:
                events = cell["requests"] * (cell["completion_tokens"] + EXTRA_EVENTS)
                proxy_cpu = cpu_seconds(pid) - before
                cell["proxy_cpu_us_per_event"] = proxy_cpu / events * 1e6
                cell["proxy_cpu_share"] = proxy_cpu / cell["seconds"]
            cells[path].append(cell)
            cpu = f", gateway CPU {cell['proxy_cpu_us_per_event']:.1f} us/event" if pid else ""
            cpu += f", client {cell['client_processes']} process(es), busiest at {cell['client_cpu_max_share']:.0%}"
            cpu += f", busiest engine front process ({len(fronts)}) at {cell['engine_front_cpu_share']:.0%}"
            if cell["errors"]:
                cpu += f"; {cell['errors']} failed, the first: {cell['first_error']}"
            say(
                f"   {n:>4} streams {path:<8} TTFT p50 {cell['ttft_ms_p50']:.0f} ms, ITL p50 "
                f"{cell['itl_ms_p50']:.2f} ms, {cell['aggregate_tok_s']:.0f} tok/s, {cell['req_s']:.2f} req/s "
                f"({cell['seconds']:.1f} s){cpu}"
            )
        rec.data["sweep"].append({"streams": n, "requests_per_cell": requests, **cells})


def front_processes(engine_pid: int) -> list[int]:
    """The engine's processes that answer its HTTP API: vLLM's named API servers, else the engine's own process."""
    servers = []
    for pid in tree(engine_pid)[1:]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                words = f.read().decode(errors="replace").rstrip("\0").split("\0")  # as prometheus/procfs reads it
        except (FileNotFoundError, ProcessLookupError):
            continue
        if API_SERVER_TITLE.match(" ".join(words)):
            servers.append(pid)
    return servers or [engine_pid]
