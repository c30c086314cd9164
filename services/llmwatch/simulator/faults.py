"""Injected faults: rates set by flags or at run time (POST /admin/faults), or forced per request by header."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmwatch.config import explain

FORCE_HEADER = "X-Sim-Fault"
FORCE_KINDS = frozenset({"error", "empty", "stall", "drop", "slow"})
ERROR_STATUSES = (429, 500, 503)


class FaultSettings(BaseModel):
    """The injectable faults, declared once: `llmwatch sim` flags (flat names, LLMWATCH_SIM_* env twins) and the
    keys of POST /admin/faults."""

    error_rate: float = Field(0.0, ge=0, le=1, description="Share of requests answered with --error-status.")
    # An int checked against the allowed codes: a Literal of ints refuses the string the CLI and env give.
    error_status: int = Field(500, description="Status of injected errors: 429, 500 or 503.")
    empty_rate: float = Field(0.0, ge=0, le=1, description="Share of requests answered 200 with no tokens.")
    ttft_delay_ms: float = Field(0.0, ge=0, description="Extra queueing before every request's prefill.")
    latency_multiplier: float = Field(1.0, gt=0, description="Multiplies every engine step (a slower card).")
    stall_rate: float = Field(0.0, ge=0, le=1, description="Share of streams that pause mid-answer.")
    stall_seconds: float = Field(5.0, ge=0, description="Length of an injected pause.")
    drop_rate: float = Field(0.0, ge=0, le=1, description="Share of streams cut mid-answer (no [DONE]).")

    @field_validator("error_status")
    @classmethod
    def _known_status(cls, value: int) -> int:
        if value not in ERROR_STATUSES:
            raise ValueError(f"error_status must be one of {', '.join(map(str, ERROR_STATUSES))}")
        return value

    def fault_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FaultSettings.model_fields}


class Faults(FaultSettings):
    """Current fault settings; a POST merges a partial JSON object into them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def merged(self, patch: Any) -> Faults:
        """A copy with ``patch`` applied; ValueError names the bad key when the patch is invalid."""
        if not isinstance(patch, dict):
            raise ValueError('the body must be a JSON object of fault settings, e.g. {"error_rate": 0.1}')
        try:
            return Faults.model_validate({**self.fault_values(), **patch})
        except ValidationError as exc:
            problems = "; ".join(explain(exc))
            raise ValueError(f"invalid fault settings ({problems}); see GET /admin/faults for the keys") from exc


@dataclass(frozen=True)
class Decision:
    """What goes wrong with one request."""

    error: bool = False
    empty: bool = False
    stall: bool = False
    drop: bool = False
    slow: bool = False


def parse_forced(header: str | None) -> frozenset[str]:
    """`X-Sim-Fault: stall,drop` -> {"stall", "drop"}; unknown words raise ValueError."""
    if not header:
        return frozenset()
    kinds = frozenset(part.strip().lower() for part in header.split(",") if part.strip())
    unknown = kinds - FORCE_KINDS
    if unknown:
        raise ValueError(f"unknown {FORCE_HEADER} value(s) {sorted(unknown)}; use one of {sorted(FORCE_KINDS)}")
    return kinds


def decide(faults: Faults, rng: random.Random, forced: frozenset[str]) -> Decision:
    """Roll each rate once; a forced kind always applies. `slow` forces the ttft delay (default 2 s if unset)."""
    return Decision(
        error="error" in forced or rng.random() < faults.error_rate,
        empty="empty" in forced or rng.random() < faults.empty_rate,
        stall="stall" in forced or rng.random() < faults.stall_rate,
        drop="drop" in forced or rng.random() < faults.drop_rate,
        slow="slow" in forced,
    )
