"""Where each threshold comes from, the first that has it: the live `threshold:*` series (the rules the alerts use);
a flag of `llmwatch doctor`; what the engine reports about itself; the stack's shipped defaults
(prometheus/rules/thresholds.yml and the engine-sizing template rendered with its defaults, read through
llmwatch.thresholds.shipped, so an installed package has them too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from llmwatch import thresholds
from llmwatch.thresholds import Threshold

Source = Literal["rule", "flag", "engine", "default"]
# The doctor's flags that each stand for one threshold series (DoctorSettings fields); any other one is
# `--threshold RECORD=VALUE`.
FLAGS: dict[str, str] = {
    "threshold:engine_max_num_seqs:max": "max_num_seqs",
    "threshold:engine_max_model_len:max": "max_model_len",
    "threshold:gpu_vllm_memory_share:max": "gpu_memory_utilization",
    "threshold:gpus_expected:min": "gpus_expected",
}


@dataclass(frozen=True)
class Limit:
    """One threshold's value and where it was read: a series, a flag, an engine's own label, or a default file."""

    record: str
    value: float
    source: Source
    where: str


def assumption(record: str, value: float) -> str:
    """What the text output says of a default: the value assumed, and the flag that overrides it."""
    flag, number = flag_for(record), f"{value:.10g}"
    if flag.startswith("--threshold"):
        given, blank = f"{flag}={number}", f"{flag}=VALUE"
    else:
        given, blank = f"{flag} {number}", flag
    return f"assuming `{given}` (the stack's default); pass `{blank}` if yours differs"


def flag_for(record: str) -> str:
    """The flag that sets ``record``: a named one (--max-num-seqs) or the generic --threshold."""
    field = FLAGS.get(record)
    return f"--{field.replace('_', '-')}" if field else f"--threshold {record}"


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class Thresholds:
    """Looks a threshold up in the four sources, in order."""

    def __init__(
        self,
        live: Mapping[tuple[str, frozenset[tuple[str, str]]], float],
        flags: Mapping[str, float],
        engine: Mapping[str, tuple[float, str]],
        defaults: list[Threshold] | None = None,
    ) -> None:
        self.live = dict(live)
        self.flags = dict(flags)
        self.engine = dict(engine)
        self.defaults = shipped_defaults() if defaults is None else defaults

    def get(self, record: str, **labels: str) -> Limit | None:
        want = set(labels.items())
        live = [v for (name, lab), v in self.live.items() if name == record and want <= lab]
        if live:
            return Limit(record, live[0], "rule", record)
        if record in self.flags:
            return Limit(record, self.flags[record], "flag", flag_for(record))
        if record in self.engine:
            value, where = self.engine[record]
            return Limit(record, value, "engine", where)
        found = [t for t in self.defaults if t.record == record and want <= set(t.labels.items())]
        if found:
            return Limit(record, found[0].value, "default", record)
        return None


def shipped_defaults() -> list[Threshold]:
    """The constant thresholds of the stack's rule files, as shipped (engine sizing at its compose defaults)."""
    return [*thresholds.load(), *thresholds.load(thresholds.shipped(thresholds.ENGINE_SIZING_DEFAULTS))]


def recorded_expr(record: str) -> str:
    """The PromQL of a computed rule of thresholds.yml (e.g. gpu_class:dcgm_gpus:count), to evaluate it directly
    where Prometheus has not loaded the rule."""
    for rule in thresholds.rules():
        if rule.get("record") == record:
            return str(rule["expr"])
    raise thresholds.ThresholdError(f"{thresholds.THRESHOLDS} has no rule recording {record}")
