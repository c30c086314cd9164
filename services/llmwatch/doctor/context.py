"""What every check reads: the Prometheus client, the window, the live thresholds and which exporters are scraped."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmwatch.doctor.prom import Prometheus

# Scrape jobs of prometheus/prometheus.yml the doctor knows (rules match on `job` only).
GATEWAY, ENGINE, GPU, NODE = "gateway", "vllm", "dcgm", "node"
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class Skip(Exception):
    """A check cannot be evaluated here; the message says why (shown under not_checked)."""


def seconds(duration: str) -> float:
    """A Prometheus duration (5m, 1h30m, 500ms) in seconds."""
    return sum(int(n) * _UNIT_S[unit] for n, unit in re.findall(r"(\d+)(ms|[smhdwy])", duration))


@dataclass
class Context:
    prom: Prometheus
    window: str
    thresholds: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)
    jobs: dict[str, list[float]] = field(default_factory=dict)  # job -> `up` of each of its targets

    @classmethod
    def load(cls, prom: Prometheus, window: str) -> Context:
        ctx = cls(prom, window)
        for s in prom.query('{__name__=~"threshold:.+"}'):
            labels = frozenset((k, v) for k, v in s.labels.items() if k != "__name__")
            ctx.thresholds[(s.labels["__name__"], labels)] = s.value
        for s in prom.query("up"):
            ctx.jobs.setdefault(s.labels.get("job", ""), []).append(s.value)
        return ctx

    @property
    def window_s(self) -> float:
        return seconds(self.window)

    def threshold(self, record: str, **labels: str) -> float:
        """A `threshold:*` series as Prometheus has it now, so the doctor and the alerts agree."""
        want = set(labels.items())
        found = [v for (name, lab), v in self.thresholds.items() if name == record and want <= lab]
        if not found:
            raise Skip(f"{record} is not loaded in Prometheus (prometheus/rules/thresholds.yml, or the engine-sizing "
                       "rules compose renders from .env)")  # fmt: skip
        return found[0]

    def optional_threshold(self, record: str) -> float | None:
        try:
            return self.threshold(record)
        except Skip:
            return None

    def scraped(self, job: str) -> bool:
        """Prometheus has a target for ``job`` (up or down)."""
        return job in self.jobs

    def need(self, job: str, what: str) -> None:
        if not self.scraped(job):
            raise Skip(f"Prometheus scrapes no `{job}` job, so {what} is unknown")

    def value(self, expr: str) -> float | None:
        return self.prom.value(expr)

    def require(self, expr: str, what: str) -> float:
        """The number ``expr`` gives; Skip when there is none (e.g. no traffic in the window)."""
        result = self.prom.value(expr)
        if result is None:
            raise Skip(f"no data for {what} in the last {self.window}")
        return result
