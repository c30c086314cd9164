"""loadtest/slo.yml: the run's targets (each a number or a record of thresholds.yml, where the operator's KPI targets
live once), what a run measured against them, and one PASS/FAIL row per SLO
(loadtest/goodput.py says why goodput missed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmwatch import thresholds
from llmwatch.stats import percentile
from loadtest.samples import Warmup, window
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
