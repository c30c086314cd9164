"""The KPI sweep: closed-loop cells alternated direct, gateway, gateway, direct at each concurrency."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from loadtest import prompts as load_prompts

from bench.closed_loop import measure
from bench.gpu_check.record import Record, say


def sweep(rec: Record, direct: str, gateway: str, key: str, args: argparse.Namespace) -> None:
    """Cells alternated direct, gateway, gateway, direct at each concurrency; the same prompts and answer length."""
    prompt_list = [p.messages for p in load_prompts.load()]
    auth = {"Authorization": f"Bearer {key}"}
    for n in args.streams:
        requests = max(args.min_requests, n * args.requests_per_stream)
        cells: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
        for path in ("direct", "gateway", "gateway", "direct"):
            url, headers = (direct, None) if path == "direct" else (gateway, auth)
            cell = asyncio.run(measure(url, n, requests, args.max_tokens, prompt_list, headers))
            cells[path].append(cell)
            say(
                f"   {n:>4} streams {path:<8} TTFT p50 {cell['ttft_ms_p50']:.0f} ms, ITL p50 "
                f"{cell['itl_ms_p50']:.2f} ms, {cell['aggregate_tok_s']:.0f} tok/s, {cell['req_s']:.2f} req/s "
                f"({cell['seconds']:.1f} s)"
            )
        rec.data["sweep"].append({"streams": n, "requests_per_cell": requests, **cells})
