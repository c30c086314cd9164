"""`llmwatch sim` flags; each has an LLMWATCH_SIM_* env twin. vLLM's flag names where vLLM has one."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from llmwatch.config import settings_config

DEFAULT_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"


class SimSettings(BaseSettings):
    model_config = settings_config("LLMWATCH_SIM_", "llmwatch sim")

    host: str = Field("0.0.0.0", description="Address to listen on (vLLM's default).")
    port: int = Field(8000, description="Port to listen on (vLLM's default).")
    served_model_name: str = Field(DEFAULT_MODEL, description="Model name clients must send (vLLM flag).")
    max_model_len: int = Field(4096, gt=16, description="Context length: prompt + output tokens (vLLM flag).")
    max_num_seqs: int = Field(4, gt=0, description="Sequences decoded together; more wait in a FIFO (vLLM flag).")
    max_num_batched_tokens: int = Field(4096, gt=0, description="Token budget of one engine step (vLLM flag).")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Share of card memory vLLM may use.")
    num_gpu_blocks_override: int | None = Field(
        None, gt=0, description="Force the KV-cache size in 16-token blocks (vLLM flag, for testing preemption)."
    )
    reasoning_parser: Literal["", "deepseek_r1"] = Field(
        "", description="deepseek_r1 puts thinking in `reasoning`; empty leaves it inline before </think>."
    )
    seed: int = Field(0, description="Seed of the generated text: same seed + prompt -> same answer.")
    gpu_profile: Literal["rtx3060", "rtx4090", "h100"] = Field("rtx3060", description="Card whose speed is modelled.")
    startup_seconds: float = Field(5.0, ge=0, description="/health answers 503 this long, like weights loading.")
    warmup_requests: int = Field(3, ge=0, description="First requests after start pay a warm-up penalty.")
    warmup_penalty_ms: float = Field(400.0, ge=0, description="Extra prefill time of the first request (tapers).")
    speed: float = Field(1.0, gt=0, description="Time scale: 2 runs the modelled card twice as fast.")
    enable_admin: bool = Field(False, description="Serve GET/POST /admin/faults (404 otherwise).")
    error_rate: float = Field(0.0, ge=0, le=1, description="Share of requests answered with --error-status.")
    # An int checked against the allowed codes: a Literal of ints refuses the string the CLI and env give.
    error_status: int = Field(500, description="Status of injected errors: 429, 500 or 503.")

    @field_validator("error_status")
    @classmethod
    def _known_status(cls, value: int) -> int:
        if value not in (429, 500, 503):
            raise ValueError("error_status must be 429, 500 or 503")
        return value

    empty_rate: float = Field(0.0, ge=0, le=1, description="Share of requests answered 200 with no tokens.")
    ttft_delay_ms: float = Field(0.0, ge=0, description="Extra queueing before every request's prefill.")
    latency_multiplier: float = Field(1.0, gt=0, description="Multiplies every engine step (a slower card).")
    stall_rate: float = Field(0.0, ge=0, le=1, description="Share of streams that pause mid-answer.")
    stall_seconds: float = Field(5.0, ge=0, description="Length of an injected pause.")
    drop_rate: float = Field(0.0, ge=0, le=1, description="Share of streams cut mid-answer (no [DONE]).")
    log_level: str = Field("INFO", description="Python log level.")
