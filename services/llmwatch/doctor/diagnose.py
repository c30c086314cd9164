"""Walk the path: run every check, collect findings and what could not be evaluated, rank the result."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from llmwatch.doctor.checks import CHECKS, ttft_high
from llmwatch.doctor.context import Context, Skip
from llmwatch.doctor.finding import Finding, NotChecked, Report, rank
from llmwatch.doctor.prom import Prometheus, QueryError


def diagnose(prom: Prometheus, window: str, flags: Mapping[str, float] | None = None) -> Report:
    """Every check over the last ``window``, with thresholds given as ``flags`` (record -> value) where Prometheus
    has no series for them; raises prom.Unreachable when Prometheus does not answer."""
    ctx = Context.load(prom, window, flags)
    report = Report()
    found: list[Finding] = []
    for check_id, check in CHECKS:
        _run(report, found, check_id, partial(check, ctx))
    _run(report, found, "ttft_high", lambda: ttft_high(ctx, found))
    report.findings = rank(found)
    report.thresholds = sorted(set(ctx.used.values()), key=lambda t: (t.record, t.where))
    return report


def _run(report: Report, found: list[Finding], check_id: str, check: Callable[[], Finding | None]) -> None:
    try:
        finding = check()
    except Skip as why:
        report.not_checked.append(NotChecked(check_id, str(why)))
        return
    except QueryError as exc:
        report.not_checked.append(NotChecked(check_id, str(exc)))
        return
    report.checked.append(check_id)
    if finding is not None:
        found.append(finding)
