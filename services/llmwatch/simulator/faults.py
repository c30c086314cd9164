"""Injected faults: rates set by flags or at run time (POST /admin/faults), or forced per request by header."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FORCE_HEADER = "X-Sim-Fault"
FORCE_KINDS = frozenset({"error", "empty", "stall", "drop", "slow"})


class Faults(BaseModel):
    """Current fault settings; a POST merges a partial JSON object into them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_rate: float = Field(0.0, ge=0, le=1)
    error_status: Literal[429, 500, 503] = 500
    empty_rate: float = Field(0.0, ge=0, le=1)
    ttft_delay_ms: float = Field(0.0, ge=0)
    latency_multiplier: float = Field(1.0, gt=0)
    stall_rate: float = Field(0.0, ge=0, le=1)
    stall_seconds: float = Field(5.0, ge=0)
    drop_rate: float = Field(0.0, ge=0, le=1)

    def merged(self, patch: Any) -> Faults:
        """A copy with ``patch`` applied; ValueError names the bad key when the patch is invalid."""
        if not isinstance(patch, dict):
            raise ValueError('the body must be a JSON object of fault settings, e.g. {"error_rate": 0.1}')
        try:
            return Faults.model_validate({**self.model_dump(), **patch})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
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
