"""REPORT.md: the run's record as markdown tables."""

from __future__ import annotations

from typing import Any

from bench.gpu_check.samplers import GB


def fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def mean_cell(cells: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("ttft_ms_p50", "ttft_ms_p99", "itl_ms_p50", "tpot_ms_p50", "stream_tok_s_median", "aggregate_tok_s",
            "req_s", "proxy_cpu_us_per_event", "proxy_cpu_share", "engine_front_cpu_share")  # fmt: skip
    return {k: sum(c[k] for c in cells) / len(cells) for k in keys if all(k in c for c in cells)}


def _share(share: float | None) -> str:
    """A share of one core as a percentage."""
    return "–" if share is None else f"{fmt(100 * share)}%"


def _errors(cells: list[dict[str, Any]]) -> str:
    """Failed requests of a row's cells, with the first one's message."""
    count = sum(c.get("errors", 0) for c in cells)
    first = next((c["first_error"] for c in cells if c.get("first_error")), None)
    return f"{count} ({first[:120].replace('|', '/')})" if count and first else str(count)


def _client_cpu(cells: list[dict[str, Any]]) -> str:
    """The busiest measuring client process's share of its core over a row's cells: near 100%, the client was the
    limit, not the path."""
    shares = [c["client_cpu_max_share"] for c in cells if "client_cpu_max_share" in c]
    return f"{100 * max(shares):.0f}% ({cells[0]['client_processes']} proc.)" if shares else "–"


def _front_cpu(cells: list[dict[str, Any]], mean: dict[str, float]) -> str:
    """The busiest engine front process's share of a core, with their count when the engine has several."""
    share = _share(mean.get("engine_front_cpu_share"))
    count = cells[0].get("engine_front_processes", 1)
    return f"{share} ({count} proc.)" if count > 1 and share != "–" else share


def _proxies(row: dict[str, Any]) -> list[str]:
    """The gateway paths of a sweep row: today's gateway, and a baseline when one ran."""
    return [p for p in ("gateway", "baseline") if p in row]


def report_markdown(data: dict[str, Any]) -> str:
    f = data["facts"]
    lines = [
        f"# GPU check: {f.get('engine_label', '')}",
        "",
        f"- GPU: {f.get('gpu', 'none')}; engine: {f.get('engine_version', '')}; date: {f.get('date', '')}",
        f"- Model: DeepSeek-R1-Distill-Qwen-1.5B, random weights, exact architecture ({f.get('model_format', '')})",
        f"- Engine command: `{f.get('engine_command', '')}`",
        f"- Card memory: {fmt(f.get('gpu_idle_bytes', 0) / GB if f.get('gpu_idle_bytes') is not None else None, 2)} "
        f"GB before the engine, {fmt(f.get('gpu_engine_bytes', 0) / GB if f.get('gpu_engine_bytes') else None, 2)} "
        "GB with the engine up and idle",
        f"- Answers: {f.get('max_tokens')} tokens each (`ignore_eos`), prompts: loadtest/prompts.jsonl in turn",
    ]
    if f.get("reasoning_only"):
        lines.append(
            "- Every answer was reasoning only: random weights never write `</think>`, so the whole output is "
            f"reasoning and no answer text follows (the gateway's `empty_response` for such an answer: "
            f"{f.get('empty_response_of_reasoning_only')}). This is the random weights, not an outage."
        )
    lines += ["", "## Steps", "", "| step | seconds | result |", "| --- | ---: | --- |"]
    lines += [f"| {s['step']} | {fmt(s['seconds'], 1)} | {'ok' if s['ok'] else 'FAILED: ' + s['note'][:200]} |"
              for s in data["steps"]]  # fmt: skip
    if data["checks"]:
        lines += ["", "## Correctness (openai SDK through the gateway)", "", "| check | result | detail |",
                  "| --- | --- | --- |"]  # fmt: skip
        lines += [f"| {c['check']} | {'PASS' if c['ok'] else 'FAIL'} | {c['detail']} |" for c in data["checks"]]
        if f.get("not_checked"):
            lines += ["", f"Not checked: {f['not_checked']}."]
    if data["sweep"]:
        lines += [
            "", "## KPI sweep (closed loop; each row the mean of its two cells, run direct, gateway, gateway, direct)",
            "", "| streams | path | requests | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | TPOT p50 ms | tok/s per stream "
            "| tok/s total | req/s | errors | client CPU | engine front CPU |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]  # fmt: skip
        for row in data["sweep"]:
            for path in ["direct", *_proxies(row)]:
                m = mean_cell(row[path])
                lines.append(
                    f"| {row['streams']} | {path} | {2 * row['requests_per_cell']} | {fmt(m['ttft_ms_p50'])} "
                    f"| {fmt(m['ttft_ms_p99'])} | {fmt(m['itl_ms_p50'], 2)} | {fmt(m['tpot_ms_p50'], 2)} "
                    f"| {fmt(m['stream_tok_s_median'])} | {fmt(m['aggregate_tok_s'])} | {fmt(m['req_s'], 2)} "
                    f"| {_errors(row[path])} | {_client_cpu(row[path])} | {_front_cpu(row[path], m)} |"
                )
        lines += ["", "Client CPU: the busiest measuring client process's share of its core; near 100% means the "
                  "client, not the path, set the pace (more streams get more client processes). Engine front CPU: "
                  "the busiest of the engine's API-server processes (vLLM's `--api-server-count`; not its engine-core "
                  "child) as a share of one core; near 100% means that process, not the GPU, set the pace.",
                  "", "Gateway / direct (1.00x = no cost); drift = the second direct cell / the first (tok/s total); "
                  "the gateway process's CPU per forwarded event and its share of one core.", "",
                  "| streams | path | ITL p50 | TTFT p50 | TTFT p99 | tok/s total | req/s | direct drift "
                  "| gateway CPU µs/event | gateway CPU |",
                  "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for row in data["sweep"]:
            d = mean_cell(row["direct"])
            d1, d2 = row["direct"]
            drift = d2["aggregate_tok_s"] / d1["aggregate_tok_s"]
            for path in _proxies(row):
                g = mean_cell(row[path])

                def x(key: str, g: dict[str, float] = g, d: dict[str, float] = d) -> str:
                    return f"{g[key] / d[key]:.2f}x" if d[key] else "–"

                share = g.get("proxy_cpu_share")
                lines.append(f"| {row['streams']} | {path} | {x('itl_ms_p50')} | {x('ttft_ms_p50')} "
                             f"| {x('ttft_ms_p99')} | {x('aggregate_tok_s')} | {x('req_s')} | {drift:.2f}x "
                             f"| {fmt(g.get('proxy_cpu_us_per_event'), 1)} "
                             f"| {_share(share)} |")  # fmt: skip
    g = data["gate"]
    if g:
        s = g["summary"]
        req = s["requests"]
        lines += [
            "", f"## Load-test gate ({g['rate']} req/s open loop, {g['users']} users, {g['seconds']} s; exit "
            f"{g['exit_code']}: {'PASS' if s['passed'] else 'FAIL'})", "",
            f"Requests: {req['total']} ({req['warmup']} warm-up), measured {req['measured']}: succeeded "
            f"{req['succeeded']}, errors {req['errors']}, empty {req['empty']}, good {req['good']}. "
            "Full report: loadtest/report.html. Engine gauges' peaks during the gate (scraped every second): "
            + (", ".join(f"{k} {v:g}" for k, v in g.get("engine_peaks", {}).items()) or "none") + ".", "",
            "| SLO | target | measured | status | note |", "| --- | --- | --- | --- | --- |",
        ]  # fmt: skip
        for r in [*s["slos"], g["gpu_memory_row"]]:
            lines.append(f"| {r['slo']} | {r.get('target', '')} | {r.get('measured_text', '')} | {r.get('status', '')} "
                         f"| {str(r.get('note', '')).replace('|', '/')} |")  # fmt: skip
    lines += ["", "Engine /metrics: metrics-idle.txt and metrics-after-load.txt beside this report.", ""]
    return "\n".join(lines)
