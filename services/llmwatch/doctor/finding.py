"""What the doctor reports: findings with evidence and an action, what was checked, and the thresholds read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from llmwatch.doctor.sources import Limit

Severity = Literal["critical", "warning", "info"]
SEVERITY_RANK: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}
# The ids of the findings; the order of the path is declared once, by checks/path.py (PATH).
CheckId = Literal[
    "target_down", "cold_start", "prompt_too_long", "kv_cache_pressure", "queueing", "engine_front_cpu",
    "decode_slow", "server_errors", "empty_responses", "gpu_memory", "ttft_high",
]  # fmt: skip


@dataclass(frozen=True)
class Evidence:
    """One number and where it came from: the PromQL that produced it (source `query`), or for a threshold the
    series (`rule`), the flag (`flag`), the engine's own label (`engine`) or the stack's default (`default`)."""

    name: str
    value: float
    query: str
    source: str = "query"


@dataclass(frozen=True)
class Action:
    """What to change: a vLLM (or gateway/client) flag or setting, to what, and why."""

    why: str
    flag: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class Finding:
    id: CheckId
    severity: Severity
    title: str
    evidence: list[Evidence]
    action: Action
    explained_by: CheckId | None = None  # for a symptom (ttft_high): the id of the finding that explains it

    def number(self, name: str) -> float:
        """The value of one piece of evidence by name."""
        return next(e.value for e in self.evidence if e.name == name)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.explained_by is None:
            del out["explained_by"]
        return out


@dataclass(frozen=True)
class NotChecked:
    id: CheckId
    why: str


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    not_checked: list[NotChecked] = field(default_factory=list)
    thresholds: list[Limit] = field(default_factory=list)  # every threshold the checks read, and its source

    @property
    def exit_code(self) -> int:
        """0 without a critical finding, 1 with one."""
        return 1 if any(f.severity == "critical" for f in self.findings) else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "findings": [f.as_dict() for f in self.findings],
            "checked": self.checked,
            "not_checked": [asdict(n) for n in self.not_checked],
            "thresholds": [asdict(t) for t in self.thresholds],
        }

    def defaults(self) -> list[Limit]:
        """The thresholds taken from the stack's defaults, for want of a series or a flag."""
        return [t for t in self.thresholds if t.source == "default"]
