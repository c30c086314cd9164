"""What every check reads: the Prometheus client, the window, the live thresholds and which exporters are scraped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmwatch.doctor.finding import Evidence, Finding
from llmwatch.doctor.sources import Limit, Thresholds, is_number
from llmwatch.duration import seconds
from llmwatch.prom import Prometheus

# Scrape jobs of prometheus/prometheus.yml the doctor knows (rules match on `job` only).
GATEWAY, ENGINE, GPU, NODE = "gateway", "vllm", "dcgm", "node"
# Another Prometheus names its jobs as it likes: a job whose targets exposed one of these in the last hour (so a
# target that just went down still counts) plays the role too.
ROLE_METRICS: dict[str, tuple[str, ...]] = {
    GATEWAY: ("llmwatch_requests_in_flight",),
    ENGINE: ("vllm:num_requests_running", "llamacpp:requests_processing"),
    GPU: ("DCGM_FI_DEV_FB_USED",),
    NODE: ("node_uname_info",),
}
# What vLLM reports about its own sizing: vllm:cache_config_info's labels (vllm/v1/metrics/loggers.py,
# PrometheusStatLogger.log_metrics_info publishes the cache config only).
ENGINE_INFO = "vllm:cache_config_info"
ENGINE_LABELS = {"threshold:gpu_vllm_memory_share:max": "gpu_memory_utilization"}


class Skip(Exception):
    """A check cannot be evaluated here; the message says why (shown under not_checked)."""


@dataclass
class Context:
    prom: Prometheus
    window: str
    thresholds: Thresholds = field(default_factory=lambda: Thresholds({}, {}, {}))
    jobs: dict[str, list[float]] = field(default_factory=dict)  # job -> `up` of each of its targets
    roles: dict[str, set[str]] = field(default_factory=dict)  # GATEWAY, ENGINE, ... -> the jobs that play it
    used: dict[tuple[str, frozenset[tuple[str, str]]], Limit] = field(default_factory=dict)  # thresholds read
    findings: list[Finding] = field(default_factory=list)  # what the checks before on the path found

    @classmethod
    def load(cls, prom: Prometheus, window: str, flags: Mapping[str, float] | None = None) -> Context:
        live: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for s in prom.query('{__name__=~"threshold:.+"}'):
            labels = frozenset((k, v) for k, v in s.labels.items() if k != "__name__")
            live[(s.labels["__name__"], labels)] = s.value
        engine: dict[str, tuple[float, str]] = {}
        for s in prom.query(ENGINE_INFO):
            for record, label in ENGINE_LABELS.items():
                if is_number(s.labels.get(label, "")):
                    engine[record] = (float(s.labels[label]), f"{ENGINE_INFO}, label {label}")
        ctx = cls(prom, window, Thresholds(live, flags or {}, engine))
        for s in prom.query("up"):
            ctx.jobs.setdefault(s.labels.get("job", ""), []).append(s.value)
        for role, metrics in ROLE_METRICS.items():
            ctx.roles[role] = {role} & ctx.jobs.keys()
            for metric in metrics:
                found = prom.query(f"group by (job) (last_over_time({metric}[1h]))")
                ctx.roles[role] |= {s.labels["job"] for s in found if s.labels.get("job") in ctx.jobs}
        return ctx

    @property
    def window_s(self) -> float:
        return seconds(self.window)

    def limit(self, record: str, **labels: str) -> Limit:
        """A threshold from the first source that has it (sources.Thresholds); recorded for the report."""
        found = self.thresholds.get(record, **labels)
        if found is None:
            raise Skip(f"{record} is neither in Prometheus nor given as a flag, and the stack has no default for it")
        self.used[(record, frozenset(labels.items()))] = found
        return found

    def threshold(self, record: str, **labels: str) -> float:
        return self.limit(record, **labels).value

    def evidence(self, name: str, record: str, **labels: str) -> Evidence:
        """A threshold as evidence: its value, and where it came from."""
        found = self.limit(record, **labels)
        return Evidence(name, round(found.value, 4), found.where, found.source)

    def optional_threshold(self, record: str) -> float | None:
        try:
            return self.threshold(record)
        except Skip:
            return None

    def scraped(self, role: str) -> bool:
        """Prometheus has a target (up or down) that plays ``role``: the stack's job of that name, or one whose
        targets expose the role's metrics."""
        return bool(self.roles.get(role))

    def job(self, *roles: str) -> str:
        """A label matcher for the jobs of ``roles``: the stack's job names, and any other job found to play them."""
        names = [*roles, *sorted(set().union(*(self.roles.get(r, set()) for r in roles)) - set(roles))]
        return f'job="{names[0]}"' if len(names) == 1 else f'job=~"{"|".join(names)}"'

    def need(self, role: str, what: str) -> None:
        if not self.scraped(role):
            metrics = " or ".join(ROLE_METRICS.get(role, ()))
            raise Skip(f"Prometheus scrapes no `{role}` job and no target exposing {metrics}, so {what} is unknown")

    def value(self, expr: str) -> float | None:
        return self.prom.value(expr)

    def require(self, expr: str, what: str) -> float:
        """The number ``expr`` gives; Skip when there is none (e.g. no traffic in the window)."""
        result = self.prom.value(expr)
        if result is None:
            raise Skip(f"no data for {what} in the last {self.window}")
        return result
