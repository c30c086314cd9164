"""What a check is: an id on the path, the exporters it reads, and a function from the context to a finding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmwatch.doctor.context import Context, Skip
from llmwatch.doctor.finding import CheckId, Evidence, Finding


@dataclass(frozen=True)
class Check:
    """One step of the bottleneck path.

    ``needs``: the scrape roles (context.GATEWAY, ENGINE, ...) it can read, in order of preference; it runs when any
    of them is scraped, and without them is not checked because of the last one, with ``what`` as the unknown.
    ``run`` returns a Finding, None when healthy, or raises Skip when it cannot decide.
    """

    id: CheckId
    run: Callable[[Context], Finding | None]
    needs: tuple[str, ...] = ()
    what: str = ""

    def __call__(self, ctx: Context) -> Finding | None:
        if self.needs and not any(ctx.scraped(role) for role in self.needs):
            ctx.need(self.needs[-1], self.what)
        return self.run(ctx)


def ev(name: str, value: float, query: str) -> Evidence:
    """A measured number as evidence, rounded for the operator's eye, with the PromQL that gave it."""
    return Evidence(name, round(value, 4), query)


def volume_gate(ctx: Context, count: float, per_5m: float, what: str) -> None:
    """The alerts' gate: a ratio needs this many requests per 5 minutes at the window's rate (1 of 3 is no outage)."""
    if count / ctx.window_s * 300 < per_5m:
        raise Skip(f"only {count:.0f} {what} in the last {ctx.window}; a ratio needs {per_5m:.0f} per 5 minutes")
