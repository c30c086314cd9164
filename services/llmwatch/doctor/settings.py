"""`llmwatch doctor` flags; each has an LLMWATCH_DOCTOR_* env twin."""

from __future__ import annotations

import re
import warnings

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from llmwatch.config import CommaList, settings_config
from llmwatch.doctor.sources import FLAGS, is_number
from llmwatch.duration import is_duration

# `json` shadows the deprecated BaseModel.json(); the flag is --json all the same, which is what operators type.
warnings.filterwarnings("ignore", message='Field name "json" in "DoctorSettings" shadows', category=UserWarning)


class DoctorSettings(BaseSettings):
    model_config = settings_config("LLMWATCH_DOCTOR_", "llmwatch doctor")

    prometheus: str = Field(description="Prometheus base URL, e.g. http://prometheus:9090 inside compose.")
    window: str = Field("5m", description="How far back to look: a Prometheus duration (5m, 1h, 30s).")
    json: bool = Field(False, description="Print the findings as one JSON object instead of text.")  # type: ignore[assignment]
    timeout: float = Field(10.0, gt=0, description="Seconds to wait for each Prometheus answer.")
    # The engine's sizing, for a Prometheus without the stack's rules (a live threshold:* series wins over these).
    max_num_seqs: int | None = Field(None, gt=0, description="The engine's --max-num-seqs (vLLM) or --parallel.")
    max_model_len: int | None = Field(None, gt=0, description="The engine's --max-model-len (tokens of context).")
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="vLLM's --gpu-memory-utilization (without it: what vLLM reports, else 0.9)."
    )
    gpus_expected: int | None = Field(None, ge=0, description="1 when a GPU runs the engine, 0 for a CPU engine.")
    threshold: CommaList = Field(
        default_factory=list,
        description="Any other threshold as RECORD=VALUE (repeat the flag, or commas in the env twin), "
        "e.g. threshold:gateway_ttft_p99_seconds:max=1.5.",
    )

    @field_validator("prometheus")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as http://prometheus:9090")
        return value.rstrip("/")

    @field_validator("window")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not is_duration(value):
            raise ValueError("must be a Prometheus duration such as 5m, 1h or 30s")
        return value

    @field_validator("threshold")
    @classmethod
    def _record_values(cls, value: list[str]) -> list[str]:
        for item in value:
            record, _, number = item.partition("=")
            if not record.startswith("threshold:") or not is_number(number):
                raise ValueError(f"{item!r}: expected RECORD=VALUE, e.g. threshold:gateway_ttft_p99_seconds:max=1.5")
        return value

    def flags(self) -> dict[str, float]:
        """The thresholds given as flags, by record name."""
        out = {record: float(number) for record, _, number in (t.partition("=") for t in self.threshold)}
        for record, name in FLAGS.items():
            given = getattr(self, name)
            if given is not None:
                out[record] = float(given)
        return out
