"""The operator's targets and alert thresholds, read from prometheus/rules/thresholds.yml.

That file is a Prometheus rule file of constant series (`threshold:<subject>:max|min`), so the alerts read it in
Prometheus; tools that run outside Prometheus (the load test's gate, tests) read the same file here, so a target
lives in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# vector(0.8), vector(4), vector(3e9)
_VECTOR = re.compile(r"^\s*vector\(\s*([-+0-9.eE]+)\s*\)\s*$")
REPO_FILE = Path(__file__).resolve().parents[2] / "prometheus" / "rules" / "thresholds.yml"


class ThresholdError(ValueError):
    """The thresholds file lacks a value, or holds one that is not a constant."""


@dataclass(frozen=True)
class Threshold:
    record: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def load(path: Path = REPO_FILE) -> list[Threshold]:
    """Every constant `threshold:*` record of the file, in file order (computed records are skipped)."""
    doc = yaml.safe_load(path.read_text())
    out: list[Threshold] = []
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("record", "")
            match = _VECTOR.match(str(rule.get("expr", "")))
            if name.startswith("threshold:") and match:
                labels = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
                out.append(Threshold(name, float(match.group(1)), labels))
    return out


def value(record: str, path: Path = REPO_FILE, **labels: str) -> float:
    """The value of one threshold; ``labels`` pick among records that carry labels."""
    found = [t.value for t in load(path) if t.record == record and labels.items() <= t.labels.items()]
    if len(found) != 1:
        raise ThresholdError(
            f"{path} has {len(found)} constant values for {record}{labels or ''}; expected exactly one"
        )
    return found[0]
