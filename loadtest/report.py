"""The run's report: a text table for the terminal and a self-contained report.html (plots embedded as PNG)."""

from __future__ import annotations

import base64
import html as html_lib
import io
from collections import defaultdict
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to memory

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from llmwatch.stats import percentile
from loadtest import answers, slo
from loadtest.samples import short_of_rate
from loadtest.stream import Sample

BUCKET_SECONDS = 5.0


def text(summary: dict[str, Any]) -> str:
    req = summary["requests"]
    lines = [
        f"\nllmwatch load test: {req['measured']} requests judged ({req['warmup']} warm-up excluded), "
        f"{req['errors']} errors, {req['empty']} empty",
        "answers: " + answers.summary_line(req["answers"]),
        *([req["answers_note"]] if req["answers_note"] else []),
        f"{'SLO':<30} {'target':>14} {'measured':>14}  result",
    ]
    for row in summary["slos"]:
        lines.append(f"{row['slo']:<30} {row['target']:>14} {row['measured_text']:>14}  {row['status']}")
        if row["note"] and row["status"] != "PASS":
            lines.append(f"    {row['note']}")
    for step in summary["sweep"]:
        lines.append(f"  step {step['rate']:g} req/s: goodput {step['goodput']:.2f} req/s  {step['status']}")
    lines.append("PASS: every SLO met" if summary["passed"] else
                 "FAIL: " + ", ".join(r["slo"] for r in summary["slos"] if r["status"] == "FAIL"))  # fmt: skip
    return "\n".join(lines)


# A step is judged on latency, on its requests meeting the per-request SLOs, and on the rate really being offered.
SWEEP_GOOD_SHARE = 0.9


def sweep_rows(steps: list[dict[str, Any]], measured: list[Sample], slos: slo.SloFile) -> list[dict[str, Any]]:
    """Each step of the step/ramp shape, judged on the requests that started in it. It passes when its TTFT SLOs
    hold, at least 90% of its requests met every per-request SLO, and it sent its rate (to within 3 standard
    deviations of a Poisson count). The highest passing rate is the answer."""
    last_end = max((s.start + s.e2e for s in measured), default=0.0)
    out = []
    for step in steps:
        end = min(step["end"], last_end)
        seconds = max(end - step["start"], 1e-9)
        inside = [s for s in measured if step["start"] <= s.start < step["end"]]
        values = slo.measure(inside, slos, None, span=seconds)
        latency = [r for r in slo.rows(slos, values, {}) if r["slo"].startswith("ttft_")]
        good = sum(slo.good(s, slos.per_request) for s in inside)
        passed = (
            bool(inside)
            and all(r["status"] != "FAIL" for r in latency)
            and good >= SWEEP_GOOD_SHARE * len(inside)
            and not short_of_rate(len(inside), step["rate"], seconds)
        )
        goodput = values["goodput_requests_per_second"] or 0.0
        status = "PASS" if passed else "FAIL"
        out.append({"rate": step["rate"], "requests": len(inside), "goodput": goodput,
                    "ttft_p99_seconds": values["ttft_p99_seconds"], "status": status})  # fmt: skip
    passing = [r["rate"] for r in out if r["status"] == "PASS"]
    for row in out:
        row["highest_passing"] = bool(passing) and row["rate"] == max(passing)
    return out


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _buckets(samples: list[Sample], t0: float, key: str) -> dict[int, list[Sample]]:
    out: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        at = s.start if key == "start" else s.start + s.e2e
        out[int((at - t0) // BUCKET_SECONDS)].append(s)
    return out


def _latency_plot(ok: list[Sample], t0: float, slos: slo.SloFile) -> str:
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    by_start = _buckets(ok, t0, "start")
    xs = sorted(by_start)
    for ax, (label, get) in zip(axes, (("TTFT", lambda s: s.ttft), ("TPOT", lambda s: s.tpot),
                                       ("E2E", lambda s: s.e2e)), strict=True):  # fmt: skip
        for q in (50, 99):
            ys = [percentile([v for s in by_start[x] if (v := get(s)) is not None], q) for x in xs]
            ax.plot([x * BUCKET_SECONDS for x in xs], [y * 1000 if y is not None else None for y in ys], label=f"p{q}")
        ax.set_title(f"{label} over time ({BUCKET_SECONDS:g} s buckets, by start)")
        ax.set_xlabel("seconds into the run")
        ax.set_ylabel("ms")
        ax.legend()
    ttft = slos.slos.get("ttft_p99_seconds")
    if ttft:
        axes[0].axhline(ttft.value * 1000, color="red", linestyle="--", label="target")
    return _png(fig)


def _histograms(ok: list[Sample], slos: slo.SloFile) -> str:
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.6))
    a.hist([s.ttft * 1000 for s in ok if s.ttft is not None], bins=40, color="#4c72b0")
    a.set_title("TTFT")
    a.set_xlabel("ms")
    for name in ("ttft_p50_seconds", "ttft_p99_seconds"):
        if target := slos.slos.get(name):
            a.axvline(target.value * 1000, color="red", linestyle="--", label=f"{name} target")
    a.legend()
    b.hist([s.tpot * 1000 for s in ok if s.tpot is not None], bins=40, color="#55a868")
    b.set_title("TPOT")
    b.set_xlabel("ms")
    if decode := slos.per_request.get("stream_decode_tokens_per_second"):
        b.axvline(1000 / decode.value, color="red", linestyle="--", label=f"1 / {decode.value:g} tok/s per stream")
        b.legend()
    return _png(fig)


def _throughput_plot(measured: list[Sample], t0: float, slos: slo.SloFile) -> str:
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.6))
    by_end = _buckets(measured, t0, "end")
    xs = sorted(by_end)
    seconds = [x * BUCKET_SECONDS for x in xs]
    a.plot(seconds, [sum(s.output_tokens or 0 for s in by_end[x] if s.ok) / BUCKET_SECONDS for x in xs])
    a.set_title("aggregate output tokens/s (by completion)")
    if target := slos.slos.get("output_tokens_per_second"):
        a.axhline(target.value, color="red", linestyle="--", label="target")
        a.legend()
    b.plot(seconds, [len(by_end[x]) / BUCKET_SECONDS for x in xs], label="completed")
    b.plot(seconds, [sum(slo.good(s, slos.per_request) for s in by_end[x]) / BUCKET_SECONDS for x in xs],
           label="goodput")  # fmt: skip
    if target := slos.slos.get("goodput_requests_per_second"):
        b.axhline(target.value, color="red", linestyle="--", label="target")
    b.set_title("requests/s")
    b.legend()
    for ax in (a, b):
        ax.set_xlabel("seconds into the run")
    return _png(fig)


def _errors_plot(measured: list[Sample]) -> str:
    kinds: dict[str, int] = defaultdict(int)
    for s in measured:
        if not s.ok:
            kinds[(s.error or "error").split(":")[0]] += 1
        elif s.empty:
            kinds["empty response"] += 1
    fig, ax = plt.subplots(figsize=(6, 2.0))
    names = sorted(kinds)
    ax.barh(names, [kinds[n] for n in names], color="#c44e52")
    for y, name in enumerate(names):
        ax.text(kinds[name], y, f" {kinds[name]}", va="center")
    if not names:
        ax.text(0.5, 0.5, f"none in {len(measured)} requests", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_title("errors and empty responses")
    return _png(fig)


CSS = """body{font-family:sans-serif;margin:2em;max-width:1500px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}.PASS{background:#d4f4d4}.FAIL{background:#f8d0d0}
.NOT{background:#eee}img{max-width:100%}"""


def html(summary: dict[str, Any], measured: list[Sample], slos: slo.SloFile) -> str:
    e = html_lib.escape
    ok = [s for s in measured if s.ok and not s.empty]
    t0 = min((s.start for s in measured), default=0.0)
    req, dec = summary["requests"], summary["stream_decode_tokens_per_second"]
    verdict = "PASS" if summary["passed"] else "FAIL"
    rows = "".join(
        f"<tr class='{r['status'].split()[0]}'><td>{e(r['slo'])}</td><td>{e(r['what'])}</td><td>{e(r['target'])}</td>"
        f"<td>{e(r['measured_text'])}</td><td>{r['status']}</td><td>{e(r['note'])}</td></tr>"
        for r in summary["slos"]
    )
    sweep = "".join(
        f"<tr class='{r['status']}'><td>{r['rate']:g}</td><td>{r['requests']}</td><td>{r['goodput']:.2f}</td>"
        f"<td>{r['status']}{' (highest passing)' if r['highest_passing'] else ''}</td></tr>"
        for r in summary["sweep"]
    )
    lat = summary["seconds"]
    dist = "".join(
        f"<tr><td>{name.upper()}</td>" + "".join(
            f"<td>{v * 1000:.1f}</td>" if v is not None else "<td>—</td>"
            for v in (d["mean"], d["p50"], d["p90"], d["p95"], d["p99"])) + "</tr>"
        for name, d in lat.items()
    )  # fmt: skip
    ceiling = (f"; the memory-bandwidth ceiling of one stream on {e(dec['gpu'])} is {dec['ceiling']:.0f} tok/s"
               if dec["ceiling"] else " (pass --gpu to compare with the card's memory-bandwidth ceiling)")  # fmt: skip
    stream = f"{dec['median']:.0f} tok/s" if dec["median"] else "—"
    plots = (
        [_latency_plot(ok, t0, slos), _histograms(ok, slos), _throughput_plot(measured, t0, slos),
         _errors_plot(measured)] if measured else []
    )  # fmt: skip
    images = "".join(f"<p><img src='{p}'></p>" for p in plots)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>llmwatch load test: {verdict}</title>
<style>{CSS}</style></head><body>
<h1>llmwatch load test: <span class="{verdict}">{verdict}</span></h1>
<p>{e(str(summary["host"]))} · {req["measured"]} requests judged over {summary["window_seconds"]:.1f} s
({req["warmup"]} warm-up requests excluded) · {req["errors"]} errors · {req["empty"]} empty ·
{req["good"]} met every per-request SLO · SLO file {e(summary["slo_file"])}</p>
<p>Answers: {e(answers.summary_line(req["answers"]))}.
{e(req["answers_note"])}</p>
<h2>SLOs</h2><table><tr><th>SLO</th><th>what</th><th>target</th><th>measured</th><th>result</th><th>why</th></tr>
{rows}</table>
<p>Per-stream decode speed (1 / median TPOT): {stream}{ceiling}. GPU memory: {e(summary["gpu_memory"]["measured"])}.</p>
{
        "<h2>Step/ramp sweep</h2><table><tr><th>rate (req/s)</th><th>requests</th><th>goodput</th><th>result</th></tr>"
        + sweep
        + "</table>"
        if sweep
        else ""
    }
<h2>Latency (ms, exact percentiles over measured requests)</h2>
<table><tr><th></th><th>mean</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th></tr>{dist}</table>
{images}
<p>Locust's own report (rounded percentiles, every request including warm-up) is its --html file beside this one.</p>
</body></html>
"""
