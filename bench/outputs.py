"""The benchmark's outputs: the JSON document (results.json), the gateway goals, the Markdown table (RESULTS.md)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import Any

from bench.runner import Plan, Results, Workload
from bench.stats import Summary, combine, versus_direct


def _gap(key: str, wl: str, doc: dict[str, Any], path: str) -> float | None:
    entry = doc["results"].get(wl, {}).get(path)
    return None if entry is None else entry["vs_direct"].get(key)


def _median(key: str, wl: str, doc: dict[str, Any], path: str) -> float | None:
    entry = doc["results"].get(wl, {}).get(path)
    return None if entry is None else entry["median"].get(key)


def goals(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The gateway's cost targets, each with the measured value and whether it holds; None if not measured."""
    added = _gap("lat_p50_ms_added", "json-c1", doc, "gateway")
    ttft = _gap("ttft_p50_ms_added", "sse-c1", doc, "gateway")
    probe = _gap("ttft_p50_ms_added", "ttft-c1", doc, "gateway")
    tput = _gap("tokens_per_s_x", "sse-c64", doc, "gateway")
    litellm = _gap("lat_p50_ms_added", "json-c1", doc, "litellm")
    per_event = {wl: _median("proxy_cpu_us_per_event", wl, doc, "gateway") for wl in ("sse-rate", "sse-4eng")}
    share = None if added is None or not litellm else max(added, 0.0) / litellm
    rows = [
        ("added p50 latency, non-streamed, c=1", added, "<= 1 ms", added is not None and added <= 1.0, "ms"),
        ("added p50 TTFT, streamed, c=1", ttft, "<= 1 ms", ttft is not None and ttft <= 1.0, "ms"),
        ("added p50 TTFT, 1-token stream probe, c=1", probe, "<= 1 ms", probe is not None and probe <= 1.0, "ms"),
        ("tokens/s at 64 streams vs direct", tput, ">= 0.8x", tput is not None and tput >= 0.8, "x"),
        (
            "added p50 latency vs LiteLLM's, non-streamed, c=1",
            share,
            "<= 1/20 (0.05)",
            share is not None and share <= 0.05,
            "share",
        ),
        *(
            (f"gateway CPU per streamed event, {wl}", v, "<= 12 µs", v is not None and v <= 12.0, "us")
            for wl, v in per_event.items()
        ),
    ]
    return [
        {"goal": g, "value": v, "target": t, "ok": ok if v is not None else None, "unit": u} for g, v, t, ok, u in rows
    ]


def document(
    results: Results,
    workloads: Sequence[Workload],
    paths: Sequence[str],
    skipped: dict[str, str],
    plan: Plan,
    pinning: dict[str, Any],
    machine_info: dict[str, Any],
    quick: bool,
    command: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema": 1,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "command": command,
        "machine": {**machine_info, "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "plan": vars(plan),
        "pinning": pinning,
        "paths": list(paths),
        "skipped": skipped,
        "skipped_workloads": results.skipped,  # per workload: the paths that sat it out, and why
        "workloads": [{**vars(w), "label": w.label, "offered_events_per_s": w.offered_events_per_s} for w in workloads],
        "results": {},
    }
    cores = len(pinning.get("load_cpus") or ()) or machine_info.get("nproc") or 1
    for wl in workloads:
        per_path = results.reps.get(wl.name, {})
        medians = {path: combine(reps) for path, reps in per_path.items()}
        direct = medians.get("direct", {})
        out["results"][wl.name] = {
            path: {
                "median": medians[path],
                "vs_direct": versus_direct(medians[path], direct),
                **(rate_verdict(medians[path], cores) if wl.tick_ms is not None else {}),
                "reps": reps,
                "total_errors": sum(int((r.get("errors") or 0) + (r.get("warmup_errors") or 0)) for r in reps),
                "error_samples": results.errors.get(wl.name, {}).get(path, []),
            }
            for path, reps in per_path.items()
        }
    out["goals"] = goals(out)
    return out


SATURATED = 0.9  # a share of its core(s) at which a process counts as the limit
KEPT_UP = 0.95  # delivered / offered at which a path counts as having carried the offered rate


def rate_verdict(med: Summary, harness_cores: int) -> dict[str, Any]:
    """For a paced run: the proxy's ceiling extrapolated from its CPU per event, and what limited the delivered rate.

    The ceiling is 1e6 / (proxy CPU µs per event): the events/s one core would carry at this cost. It is an
    extrapolation, not a measurement; "limit" says whether the proxy, the harness (upstream and load generator on
    their core(s)) or nothing held the delivered rate below the offered one.
    """
    us, share = med.get("proxy_cpu_us_per_event"), med.get("proxy_cpu_share")
    delivered, offered = med.get("events_per_s"), med.get("offered_events_per_s")
    harness = sum(med.get(k) or 0.0 for k in ("upstream_cpu_share", "loadgen_cpu_share")) / harness_cores
    if delivered is None or not offered:
        limit = "not measured"
    elif delivered >= KEPT_UP * offered:
        limit = "none: the offered rate was delivered"
    else:
        busy = [
            *(["the proxy (its core saturated)"] if share is not None and share >= SATURATED else []),
            *(["the harness (upstream + load generator saturated their core)"] if harness >= SATURATED else []),
        ]
        limit = " and ".join(busy) or "unclear: no core saturated (see other processes)"
    return {
        "ceiling_events_per_s": 1e6 / us if us else None,
        "harness_cpu_share": harness,
        "delivered_of_offered": delivered / offered if delivered is not None and offered else None,
        "limit": limit,
    }


GOAL_FORMAT = {"ms": "{:+.3f} ms", "x": "{:.3f}x", "share": "{:.3f}", "us": "{:.1f} µs"}


def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if v is None else fmt.format(v)


def _cell(m: Summary, r: Summary, key: str, is_direct: bool) -> str:
    value = m.get(key)
    if key in ("rps", "tokens_per_s", "events_per_s"):
        base, extra = _num(value, "{:.0f}"), r.get(f"{key}_x")
        return base if is_direct or extra is None else f"{base} ({extra:.2f}x)"
    extra = r.get(f"{key}_added")
    return _num(value) if is_direct or extra is None else f"{_num(value)} ({extra:+.2f})"


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "# Gateway overhead benchmark",
        "",
        f"{doc['date']} · {m['nproc']} CPU ({m['cpu_model']}) · Linux {m['kernel']} · Python {m['python']} · "
        f"uvicorn {m['uvicorn']} · uvloop {m['uvloop']} · aiohttp {m['aiohttp']} · nginx {m['nginx']} · "
        f"LiteLLM {m['litellm']} · load average at start {m['loadavg_at_start']}, at end {m['loadavg_at_end']}",
        "",
        f"`{doc['command']}`: {doc['plan']['reps']} repetition(s), median of medians; "
        f"pinning: {doc['pinning']['layout']}."
        + (" **Quick smoke run: the numbers mean nothing.**" if doc["quick"] else ""),
        "",
    ]
    if doc["skipped"]:
        lines += [*(f"Skipped **{name}**: {why}" for name, why in doc["skipped"].items()), ""]
    lines += ["## Gateway goals", "", "| goal | measured | target | result |", "|---|---|---|---|"]
    for g in doc["goals"]:
        verdict = {True: "PASS", False: "FAIL", None: "not measured"}[g["ok"]]
        value = "–" if g["value"] is None else GOAL_FORMAT[g["unit"]].format(g["value"])
        lines.append(f"| {g['goal']} | {value} | {g['target']} | {verdict} |")
    lines += [
        "",
        "TTFT is checked twice: on `sse-c1` (the first token races a burst of 255 more, sent with no pacing, through",
        "every process on the box) and on the 1-token probe `ttft-c1` (the per-request cost alone, as with real",
        "token gaps of ~10 ms). The LiteLLM row compares the gateway's added p50 latency with LiteLLM's.",
    ]
    cols = ("rps", "tokens_per_s", "lat_p50_ms", "lat_p99_ms", "ttft_p50_ms", "ttft_p99_ms")
    lines += [
        "",
        "## Results",
        "",
        "Latencies in ms with the added ms against direct in brackets; throughputs with the factor of direct.",
        "CPU: seconds of CPU the proxy process tree used per 1,000 requests, and its share of one core.",
        "Streamed workloads add events/s delivered (every `data:` event of the completed streams) and the proxy's",
        "CPU µs per event.",
    ]
    for wl in doc["workloads"]:
        stream = wl["stream"]
        extra = ("events/s", "proxy CPU µs/event") if stream else ()
        head = ("path", "req/s", "tokens/s", "p50", "p99", "TTFT p50", "TTFT p99", *extra)
        head += ("proxy CPU s/1k req", "proxy CPU", "errors")
        lines += ["", f"### {wl['label']} (`{wl['name']}`)", ""]
        if wl.get("offered_events_per_s"):
            lines += [f"Offered: {wl['offered_events_per_s']:,.0f} events/s.", ""]
        lines += [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
        for path, entry in doc["results"][wl["name"]].items():
            med, rel = entry["median"], entry["vs_direct"]
            keys = (*cols, "events_per_s") if stream else cols
            cells = [_cell(med, rel, key, path == "direct") for key in keys]
            if stream:
                cells.append(_num(med.get("proxy_cpu_us_per_event"), "{:.1f}"))
            share = med.get("proxy_cpu_share")
            lines.append(
                f"| {path} | {' | '.join(cells)} | {_num(med.get('proxy_cpu_s_per_1k'), '{:.3f}')} | "
                f"{_num(None if share is None else share * 100, '{:.0f}%')} | {entry['total_errors']} |"
            )
        for path, why in doc["skipped_workloads"].get(wl["name"], {}).items():
            lines += ["", f"Skipped **{path}** here: {why}."]
    paced = [wl for wl in doc["workloads"] if wl.get("offered_events_per_s")]
    if paced:
        lines += [
            "",
            "## Paced workloads: delivered rate, and the ceiling it implies",
            "",
            "Ceiling = 1e6 / proxy CPU µs per event: the events/s one core would carry at the measured cost, an",
            "**extrapolation from CPU per event**, not a measured rate. Limit says what held the delivered rate",
            f"below {KEPT_UP:.0%} of the offered one: a core at {SATURATED:.0%} or more. Harness = upstream + load",
            "generator, as a share of their core(s).",
            "",
            "| workload | path | offered events/s | delivered events/s | proxy CPU µs/event | proxy CPU | harness CPU "
            "| ceiling (extrapolated) | limit |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for wl in paced:
            for path, entry in doc["results"][wl["name"]].items():
                med = entry["median"]
                delivered, ratio = med.get("events_per_s"), entry.get("delivered_of_offered")
                lines.append(
                    f"| {wl['name']} | {path} | {wl['offered_events_per_s']:,.0f} | "
                    f"{_num(delivered, '{:,.0f}')}{'' if ratio is None else f' ({ratio:.2f})'} | "
                    f"{_num(med.get('proxy_cpu_us_per_event'), '{:.1f}')} | "
                    f"{_num(_pct(med.get('proxy_cpu_share')), '{:.0f}%')} | "
                    f"{_num(_pct(entry.get('harness_cpu_share')), '{:.0f}%')} | "
                    f"{_num(entry.get('ceiling_events_per_s'), '{:,.0f} events/s')} | {entry.get('limit', '–')} |"
                )
    lines += [
        "",
        "## Upstream and load generator (is the harness the bottleneck?)",
        "",
        "Share of one core while the direct path runs; the upstream must stay well below the proxies' cost.",
        "",
        "The last column is CPU used by processes not ours (other users of a shared machine), in cores, the worst",
        "path's median: anything much above 0 means the run was disturbed; re-run on a quiet machine.",
        "",
        "| workload | upstream CPU s/1k req | upstream CPU | load generator CPU | other processes (cores) |",
        "|---|---|---|---|---|",
    ]
    for wl in doc["workloads"]:
        per_path = doc["results"][wl["name"]]
        d = per_path.get("direct", {}).get("median", {})
        others = [v for e in per_path.values() if (v := e["median"].get("other_cpu_share")) is not None]
        lines.append(
            f"| {wl['name']} | {_num(d.get('upstream_cpu_s_per_1k'), '{:.3f}')} | "
            f"{_num(_pct(d.get('upstream_cpu_share')), '{:.0f}%')} | "
            f"{_num(_pct(d.get('loadgen_cpu_share')), '{:.0f}%')} | {_num(max(others, default=None))} |"
        )
    return "\n".join(lines) + "\n"


def _pct(v: float | None) -> float | None:
    return None if v is None else v * 100
