"""The diagnosis as operators read it in a terminal, or as JSON for scripts."""

from __future__ import annotations

import json

from llmwatch.doctor.finding import Diagnosis
from llmwatch.doctor.sources import assumption

MARK = {"critical": "CRITICAL", "warning": "WARNING ", "info": "info    "}
# How a threshold's evidence line says where it came from (a live series, `rule`, needs no word).
FROM = {"default": " (the stack's default)", "flag": " (flag)", "engine": " (the engine's own report)"}


def as_json(diagnosis: Diagnosis) -> str:
    return json.dumps(diagnosis.as_dict(), indent=2, ensure_ascii=False)


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) and abs(value) < 1e15 else f"{value:.4g}"


def as_text(diagnosis: Diagnosis, prometheus: str, window: str) -> str:
    lines = [f"llmwatch doctor: {prometheus}, last {window}", ""]
    defaults = diagnosis.defaults()
    if defaults:
        lines += [f"Thresholds: {len(defaults)} of the {len(diagnosis.thresholds)} read are the stack's defaults, as "
                  "Prometheus has no `threshold:*` series for them (llmwatch's rules not loaded); each finding names "
                  "what it assumed.", ""]  # fmt: skip
    if not any(f.severity != "info" for f in diagnosis.findings):
        lines += ["No critical or warning finding: the bottleneck path is clear.", ""]
    for finding in diagnosis.findings:
        lines.append(f"{MARK[finding.severity]} {finding.id}: {finding.title}")
        for e in finding.evidence:
            if e.source == "default":
                lines.append(f"  {assumption(e.query.split('{')[0], e.value)}")
        for e in finding.evidence:
            lines.append(f"    {e.name} = {_number(e.value)}    <- {e.query}{FROM.get(e.source, '')}")
        action = finding.action
        if action.flag:
            lines.append(f"  -> {action.flag} {action.value or ''}".rstrip())
        lines.append(f"     {action.why}")
        lines.append("")
    lines.append("checked: " + (", ".join(diagnosis.checked) or "nothing"))
    for item in diagnosis.not_checked:
        lines.append(f"not checked: {item.id}: {item.why}")
    return "\n".join(lines) + "\n"
