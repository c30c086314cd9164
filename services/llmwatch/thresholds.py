"""The operator's targets and alert thresholds, read from prometheus/rules/thresholds.yml.

That file is a Prometheus rule file of constant series (`threshold:<subject>:max|min`), so the alerts read it in
Prometheus; tools that run outside Prometheus (the load test's gate, `llmwatch doctor`, tests) read the same file
here, so a target lives in one place.

An installed package (the image) carries a copy of the stack's rule files, made when the wheel is built (setup.py's
SHIPPED); in a checkout the same package paths are committed links to the files themselves. `shipped` reads either
from the package, never from a path guessed around it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

# vector(0.8), vector(4), vector(3e9)
_VECTOR = re.compile(r"^\s*vector\(\s*([-+0-9.eE]+)\s*\)\s*$")
THRESHOLDS = "prometheus/rules/thresholds.yml"
ENGINE_SIZING_DEFAULTS = "prometheus/defaults/engine-sizing.yml"
# Where setup.py puts the copies inside the package, under their repository paths.
PACKAGED = "_shipped"


class ThresholdError(ValueError):
    """The thresholds file lacks a value, or holds one that is not a constant."""


@dataclass(frozen=True)
class Threshold:
    record: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def shipped(name: str) -> Path:
    """The stack's rule file ``name`` (a repository path such as THRESHOLDS), as the package carries it."""
    packaged = Path(str(resources.files("llmwatch").joinpath(PACKAGED, name)))
    if packaged.is_file():
        return packaged
    raise ThresholdError(
        f"{name} is not in the package ({packaged}): build the package with setup.py (it copies the file), or, in a "
        "checkout, restore the committed link (git checkout services/llmwatch/_shipped)"
    )


def rules(path: Path | None = None) -> list[dict[str, object]]:
    """Every rule of a rule file (default: thresholds.yml), in file order."""
    doc = yaml.safe_load((path or shipped(THRESHOLDS)).read_text())
    return [rule for group in doc.get("groups", []) for rule in group.get("rules", [])]


def load(path: Path | None = None) -> list[Threshold]:
    """Every constant `threshold:*` record of the file (default: thresholds.yml), in file order (computed records
    are skipped)."""
    out: list[Threshold] = []
    for rule in rules(path):
        name = str(rule.get("record", ""))
        match = _VECTOR.match(str(rule.get("expr", "")))
        if name.startswith("threshold:") and match:
            raw = rule.get("labels") or {}
            labels = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
            out.append(Threshold(name, float(match.group(1)), labels))
    return out


def value(record: str, path: Path | None = None, **labels: str) -> float:
    """The value of one threshold; ``labels`` pick among records that carry labels."""
    found = [t.value for t in load(path) if t.record == record and labels.items() <= t.labels.items()]
    if len(found) != 1:
        raise ThresholdError(
            f"{path or THRESHOLDS} has {len(found)} constant values for {record}{labels or ''}; expected exactly one"
        )
    return found[0]
