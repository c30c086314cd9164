"""The operator's KPIs, computed from access-log lines (the same numbers Kibana and Grafana show)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmwatch.stats import percentile


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Kpis:
    requests: int
    success_ratio: float
    server_errors: int
    empty_responses: int
    tool_call_answers: int
    p50_ms: float | None
    p99_ms: float | None
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    output_tokens_per_s: float | None  # aggregate, over the wall-clock span of the chat requests
    stream_decode_p50: float | None  # per stream

    @classmethod
    def of(cls, lines: list[dict[str, Any]], span_s: float | None) -> Kpis:
        chat = [x for x in lines if x["kind"] == "chat"]
        durations = [x["duration_ms"] for x in chat]
        ttfts = [x["ttft_ms"] for x in chat if x["ttft_ms"] is not None]
        rates = [x["tokens_per_s"] for x in chat if x["stream"] and x["tokens_per_s"] is not None]
        tokens = sum(x["completion_tokens"] or 0 for x in lines)
        ok = sum(1 for x in lines if x["status"] < 400)
        return cls(
            requests=len(lines),
            success_ratio=ok / len(lines) if lines else 0.0,
            server_errors=sum(1 for x in lines if x["status"] >= 500),
            empty_responses=sum(1 for x in lines if x["empty_response"]),
            tool_call_answers=sum(1 for x in lines if x["answer_kind"] == "tool_calls"),
            p50_ms=percentile(durations, 50),
            p99_ms=percentile(durations, 99),
            ttft_p50_ms=percentile(ttfts, 50),
            ttft_p99_ms=percentile(ttfts, 99),
            output_tokens_per_s=tokens / span_s if span_s else None,
            stream_decode_p50=percentile(rates, 50),
        )

    def table(self) -> str:
        def fmt(value: float | None, unit: str) -> str:
            return "n/a" if value is None else f"{value:,.0f} {unit}"

        rows = [
            ("requests", f"{self.requests}"),
            ("success", f"{self.success_ratio:.1%}"),
            ("5xx", f"{self.server_errors}"),
            ("empty responses", f"{self.empty_responses}"),
            ("tool-call answers", f"{self.tool_call_answers}"),
            ("latency p50 / p99 (chat)", f"{fmt(self.p50_ms, 'ms')} / {fmt(self.p99_ms, 'ms')}"),
            ("TTFT p50 / p99 (chat, streamed)", f"{fmt(self.ttft_p50_ms, 'ms')} / {fmt(self.ttft_p99_ms, 'ms')}"),
            ("output tokens/s (aggregate)", fmt(self.output_tokens_per_s, "tok/s")),
            ("decode tokens/s per stream (p50)", fmt(self.stream_decode_p50, "tok/s")),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)
