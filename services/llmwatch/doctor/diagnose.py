"""Walk the path: run every check, collect findings and what could not be evaluated, rank the result."""

from __future__ import annotations

from collections.abc import Mapping

from llmwatch.doctor.checks.base import Check
from llmwatch.doctor.checks.path import PATH
from llmwatch.doctor.context import Context, Skip
from llmwatch.doctor.finding import SEVERITY_RANK, Diagnosis, Finding, NotChecked
from llmwatch.prom import Prometheus, QueryError

ORDER = [check.id for check in PATH]


def diagnose(prom: Prometheus, window: str, flags: Mapping[str, float] | None = None) -> Diagnosis:
    """Every check over the last ``window``, with thresholds given as ``flags`` (record -> value) where Prometheus
    has no series for them; raises prom.Unreachable when Prometheus does not answer."""
    ctx = Context.load(prom, window, flags)
    diagnosis = Diagnosis()
    for check in PATH:
        _run(diagnosis, ctx, check)
    diagnosis.findings = rank(ctx.findings)
    diagnosis.thresholds = sorted(set(ctx.used.values()), key=lambda t: (t.record, t.where))
    return diagnosis


def _run(diagnosis: Diagnosis, ctx: Context, check: Check) -> None:
    try:
        finding = check(ctx)
    except (Skip, QueryError) as why:
        diagnosis.not_checked.append(NotChecked(check.id, str(why)))
        return
    diagnosis.checked.append(check.id)
    if finding is not None:
        ctx.findings.append(finding)


def rank(findings: list[Finding]) -> list[Finding]:
    """Most severe first (path order within a severity); a symptom goes right after the cause that explains it."""
    ids = {f.id for f in findings}
    groups = [[f] for f in findings if f.explained_by not in ids]
    for symptom in (f for f in findings if f.explained_by in ids):
        next(g for g in groups if g[0].id == symptom.explained_by).append(symptom)
    groups.sort(key=lambda g: (min(SEVERITY_RANK[f.severity] for f in g), ORDER.index(g[0].id)))
    return [f for group in groups for f in group]
