"""loadtest/slo.yml: the run's targets (each a number or a record of thresholds.yml, where the operator's KPI targets
live once), what a run measured against them, and one PASS/FAIL row per SLO."""

from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmwatch import thresholds
from llmwatch.stats import percentile
from loadtest.samples import Warmup, short_of_rate, window
from loadtest.stream import Sample

DEFAULT_FILE = Path(__file__).resolve().with_name("slo.yml")
# What each SLO in slo.yml measures; a name outside this list is a typo in the file.
SLO_NAMES = {
    "ttft_p50_seconds": "TTFT, median over measured requests",
    "ttft_p99_seconds": "TTFT, 99th percentile over measured requests",
    "output_tokens_per_second": "aggregate output tokens/s over the measured window",
    "goodput_requests_per_second": "completed requests/s that met every per-request SLO",
    "gpu_memory_bytes": "peak GPU memory used during the run (dcgm-exporter FB_USED)",
}
PER_REQUEST_NAMES = {"ttft_seconds", "stream_decode_tokens_per_second"}


class SloError(ValueError):
    """slo.yml is malformed; the message names the entry."""


@dataclass(frozen=True)
class Target:
    name: str
    bound: str  # "max" or "min"
    value: float
    threshold: str | None = None  # the thresholds.yml record it was read from
    labels: dict[str, str] = field(default_factory=dict)

    def met(self, measured: float) -> bool:
        return measured <= self.value if self.bound == "max" else measured >= self.value

    def text(self) -> str:
        return f"{'≤' if self.bound == 'max' else '≥'} {fmt(self.name, self.value)}"


@dataclass(frozen=True)
class SloFile:
    warmup: Warmup
    per_request: dict[str, Target]
    slos: dict[str, Target]

    def targets(self) -> list[Target]:
        return [*self.per_request.values(), *self.slos.values()]


def _target(name: str, entry: Any, where: str, thresholds_file: Path | None) -> Target:
    """One entry: exactly one of max:/min:, holding a number or the name of a thresholds.yml record."""
    if not isinstance(entry, dict) or len({"max", "min"} & entry.keys()) != 1:
        raise SloError(f"{where}.{name} needs exactly one of max: or min:")
    bound = "max" if "max" in entry else "min"
    if extra := sorted(entry.keys() - {bound, "labels"}):  # `threshold:` beside a number: the form before this one
        hint = f"; write the record as the bound, {bound}: {entry['threshold']!r}" if "threshold" in extra else ""
        raise SloError(f"{where}.{name}: unknown {extra}{hint} (the value is read from thresholds.yml)")
    raw, labels = entry[bound], {str(k): str(v) for k, v in (entry.get("labels") or {}).items()}
    if isinstance(raw, str) and raw.startswith("threshold:"):
        if not raw.endswith(f":{bound}"):
            raise SloError(f"{where}.{name}.{bound} names {raw}, a bound of the other kind: use a :{bound} record")
        try:
            value = thresholds.value(raw, thresholds_file, **labels)
        except (OSError, thresholds.ThresholdError) as exc:
            raise SloError(f"{where}.{name}.{bound}: {exc}") from None
        return Target(name, bound, value, raw, labels)
    if labels:
        raise SloError(f"{where}.{name}.labels pick among threshold records; a number takes none, remove them")
    try:  # float(), since YAML reads 3.0e9 (no exponent sign) as a string
        return Target(name, bound, float(raw))
    except (TypeError, ValueError):
        raise SloError(f"{where}.{name}.{bound} must be a number or a threshold: record, got {raw!r}") from None


def load(path: Path = DEFAULT_FILE, thresholds_file: Path | None = None) -> SloFile:
    """The SLO file, each `threshold:` record resolved in ``thresholds_file`` (default: the stack's thresholds.yml)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SloError(f"cannot read SLO file {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise SloError(f"{path} must be a mapping with warmup, per_request and slos")
    unknown_keys = doc.keys() - {"warmup", "per_request", "slos"}
    if unknown_keys or not doc.get("slos"):
        raise SloError(f"{path} needs `slos:` (optionally warmup, per_request); unknown keys: {sorted(unknown_keys)}")
    warm = doc.get("warmup") or {}
    per_request = {k: _target(k, v, "per_request", thresholds_file) for k, v in (doc.get("per_request") or {}).items()}
    slos = {k: _target(k, v, "slos", thresholds_file) for k, v in (doc.get("slos") or {}).items()}
    unknown = (per_request.keys() - PER_REQUEST_NAMES) | (slos.keys() - SLO_NAMES.keys())
    if unknown:
        known = sorted(PER_REQUEST_NAMES | SLO_NAMES.keys())
        raise SloError(f"{path}: unknown SLO names {sorted(unknown)}; known: {known}")
    return SloFile(Warmup(int(warm.get("requests", 0)), float(warm.get("seconds", 0.0))), per_request, slos)


def fmt(name: str, value: float | None) -> str:
    if value is None:
        return "—"
    if name.endswith("_seconds"):
        return f"{value * 1000:.0f} ms"
    if name.endswith("_bytes"):
        return f"{value / 1e9:.2f} GB"
    if name.endswith("requests_per_second"):
        return f"{value:.2f} req/s"
    return f"{value:.1f} tok/s"


def good(sample: Sample, per_request: dict[str, Target]) -> bool:
    """Goodput (vLLM's --goodput): succeeded, not empty, and within every per-request SLO."""
    if not sample.ok or sample.empty:
        return False
    ttft = per_request.get("ttft_seconds")
    if ttft and (sample.ttft is None or not ttft.met(sample.ttft)):
        return False
    decode = per_request.get("stream_decode_tokens_per_second")
    return not (decode and sample.tpot and not decode.met(1.0 / sample.tpot))


def measure(
    samples: list[Sample], slo: SloFile, gpu_memory: float | None, span: float | None = None
) -> dict[str, float | None]:
    """The value of every SLO over the measured (post-warm-up) samples; ``span`` defaults to their window."""
    span = window(samples) if span is None else span
    ttfts = [s.ttft for s in samples if s.ok and s.ttft is not None]
    tokens = sum(s.output_tokens or 0 for s in samples if s.ok)
    goodput = sum(good(s, slo.per_request) for s in samples)
    return {
        "ttft_p50_seconds": percentile(ttfts, 50),
        "ttft_p99_seconds": percentile(ttfts, 99),
        "output_tokens_per_second": tokens / span if span > 0 else None,
        "goodput_requests_per_second": goodput / span if span > 0 else None,
        "gpu_memory_bytes": gpu_memory,
    }


def rows(slo: SloFile, measured: dict[str, float | None], notes: dict[str, str]) -> list[dict[str, Any]]:
    """One row per SLO: PASS, FAIL, or NOT MEASURED (which does not fail the gate)."""
    out = []
    for name, target in slo.slos.items():
        value = measured.get(name)
        status = "NOT MEASURED" if value is None else ("PASS" if target.met(value) else "FAIL")
        out.append({
            "slo": name, "what": SLO_NAMES[name], "target": target.text(), "bound": target.bound,
            "target_value": target.value, "measured": value, "measured_text": fmt(name, value), "status": status,
            "note": notes.get(name, ""),
        })  # fmt: skip
    return out


def explain_goodput(
    measured: list[Sample],
    values: dict[str, float | None],
    target: Target,
    slos: SloFile,
    batch: int,
    rate: float = 0.0,
    late: int = 0,
    unsent: int = 0,
) -> str:
    """Why goodput missed its target, with the numbers: how much load was sent, what the engine can complete at all
    (answer length ÷ (batch x one stream's decode speed)), and then the cause. "Offered less" only when the arrivals
    were late or unsent, or the count sent falls short of the rate (``rate``, else the target) by more than Poisson
    noise; otherwise the measured cause of the misses: queueing at --max-num-seqs, decode speed, or errors."""
    ok = [s for s in measured if s.ok and not s.empty and s.output_tokens]
    if not ok:
        return "No request completed with tokens in the measured window."
    span = window(measured)
    sent = len(measured) / span if span else 0.0
    mean_out = statistics.fmean(s.output_tokens or 0 for s in ok)
    tpots = [s.tpot for s in ok if s.tpot]
    missed = [s for s in ok if not good(s, slos.per_request)]
    failed = len(measured) - len(ok)
    parts = [
        f"{sent:.2f} req/s were sent; {len(missed)} of {len(ok)} completed requests missed a per-request SLO "
        f"and {failed} failed or were empty."
    ]
    if tpots:
        stream = 1.0 / statistics.median(tpots)
        aggregate = values.get("output_tokens_per_second") or 0.0
        if batch:
            capacity = batch * stream / mean_out
            how = f"{batch} streams (--max-num-seqs) × {stream:.0f} tok/s ÷ {mean_out:.0f} tokens per answer"
        else:
            capacity = aggregate / mean_out
            how = f"{aggregate:.0f} tok/s aggregate (pass --max-num-seqs for the batch) ÷ {mean_out:.0f} tokens"
        parts.append(f"Answers averaged {mean_out:.0f} output tokens and one stream decoded at {stream:.0f} tok/s, so "
                     f"the engine completes at most {how} = {capacity:.2f} answers/s.")  # fmt: skip
        if capacity < target.value:
            parts.append(
                f"That is below the target of {target.value:g} req/s: this profile cannot meet it without shorter "
                "answers (--max-tokens), a larger batch (if the KV cache holds it) or a faster GPU."
            )
    asked = rate or target.value
    starts = sorted(s.start for s in measured)
    if late or unsent:
        parts.append(
            f"The run offered less than {asked:g} req/s: {late} arrivals found every user busy and went "
            f"out late, and {unsent} were never sent: the server fell behind (or --users is too small)."
        )
    elif short_of_rate(len(starts), asked, starts[-1] - starts[0]):
        parts.append(f"The run offered less than {asked:g} req/s, more than Poisson noise explains: raise "
                     + ("--users." if rate else "--rate (or --users)."))  # fmt: skip
    elif missed or failed:
        parts.append(_cause(measured, ok, missed, slos, batch))
    return " ".join(parts)


def _cause(measured: list[Sample], ok: list[Sample], missed: list[Sample], slos: SloFile, batch: int) -> str:
    """The load was offered: what the misses measured, the largest cause first."""
    ttft = slos.per_request.get("ttft_seconds")
    decode = slos.per_request.get("stream_decode_tokens_per_second")
    slow_first = [s for s in missed if ttft and (s.ttft is None or not ttft.met(s.ttft))]
    slow_decode = [s for s in missed if decode and s.tpot and not decode.met(1.0 / s.tpot)]
    # In flight when each request started: every earlier request that had not ended yet.
    ends = sorted(s.start + s.e2e for s in measured)
    starts = sorted(s.start for s in measured)
    busy = {id(s): bisect.bisect_left(starts, s.start) - bisect.bisect_right(ends, s.start) for s in measured}
    causes: list[tuple[int, str]] = []
    if slow_first and batch:
        queued = [s for s in slow_first if busy[id(s)] >= batch]
        if queued:
            causes.append((len(queued), f"queueing at --max-num-seqs {batch}: {len(queued)} of the "
                           f"{len(slow_first)} TTFT misses started while {batch} or more requests were already in "
                           "flight, so they waited for a batch slot (raise --max-num-seqs if the KV cache has room, "
                           "or add a replica)"))  # fmt: skip
        if len(slow_first) > len(queued):
            free = len(slow_first) - len(queued)
            causes.append((free, f"{free} TTFT misses with a batch slot free: a slow prefill (long prompts) or the "
                           "network; `llmwatch doctor` tells which"))  # fmt: skip
    elif slow_first:
        causes.append((len(slow_first), f"{len(slow_first)} TTFT misses: pass --max-num-seqs to tell queueing for a "
                       "batch slot from a slow prefill"))  # fmt: skip
    if slow_decode and decode:
        speed = 1.0 / statistics.median(s.tpot or 0 for s in slow_decode)
        causes.append((len(slow_decode), f"decode speed: {len(slow_decode)} requests streamed below {decode.value:g} "
                       f"tok/s (median {speed:.0f} tok/s among them)"))  # fmt: skip
    failed = len(measured) - len(ok)
    if failed:
        causes.append((failed, f"errors: {failed} requests failed or were empty"))
    if not causes:
        return "The rate was offered; the misses have no single measured cause."
    causes.sort(key=lambda c: -c[0])
    return (
        "The rate was offered (within Poisson noise, none late or unsent). Measured cause: "
        + "; ".join(text for _, text in causes)
        + "."
    )
