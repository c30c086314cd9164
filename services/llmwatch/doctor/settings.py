"""`llmwatch doctor` flags; each has an LLMWATCH_DOCTOR_* env twin."""

from __future__ import annotations

import re
import warnings

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from llmwatch.config import settings_config

DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")


# `json` shadows the deprecated BaseModel.json(); the flag is --json all the same, which is what operators type.
warnings.filterwarnings("ignore", message='Field name "json" in "DoctorSettings" shadows', category=UserWarning)


class DoctorSettings(BaseSettings):
    model_config = settings_config("LLMWATCH_DOCTOR_", "llmwatch doctor")

    prometheus: str = Field(description="Prometheus base URL, e.g. http://prometheus:9090 inside compose.")
    window: str = Field("5m", description="How far back to look: a Prometheus duration (5m, 1h, 30s).")
    json: bool = Field(False, description="Print the findings as one JSON object instead of text.")  # type: ignore[assignment]
    timeout: float = Field(10.0, gt=0, description="Seconds to wait for each Prometheus answer.")

    @field_validator("prometheus")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as http://prometheus:9090")
        return value.rstrip("/")

    @field_validator("window")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION.fullmatch(value):
            raise ValueError("must be a Prometheus duration such as 5m, 1h or 30s")
        return value
