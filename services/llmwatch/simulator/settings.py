"""`llmwatch sim` flags; each has an LLMWATCH_SIM_* env twin. vLLM's flag names where vLLM has one."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from llmwatch.config import settings_config
from llmwatch.simulator.faults import FaultSettings
from llmwatch.vllm.model import MODEL_ID


class SimSettings(BaseSettings, FaultSettings):
    """Engine flags, then the fault flags (FaultSettings: the same keys as POST /admin/faults)."""

    model_config = settings_config("LLMWATCH_SIM_", "llmwatch sim")

    host: str = Field("0.0.0.0", description="Address to listen on (vLLM's default).")
    port: int = Field(8000, description="Port to listen on (vLLM's default).")
    served_model_name: str = Field(MODEL_ID, description="Model name clients must send (vLLM flag).")
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
    enable_auto_tool_choice: bool = Field(
        False, description="Serve tool calls (vLLM flag, with --tool-call-parser): auto, required and a named "
        "function. Without both, vLLM refuses every tool_choice but none with a 400.",
    )  # fmt: skip
    tool_call_parser: Literal["", "hermes"] = Field(
        "", description="The tool-call parser (vLLM flag; hermes is the one that starts for this model's vocabulary)."
    )
    tool_call_share: float = Field(
        0.5, ge=0, le=1, description="Share of tool_choice auto requests answered with a tool call (seeded)."
    )
    seed: int = Field(0, description="Seed of the generated text: same seed + prompt -> same answer.")
    gpu_profile: Literal["rtx3060", "rtx4090", "h100"] = Field("rtx3060", description="Card whose speed is modelled.")
    startup_seconds: float = Field(5.0, ge=0, description="/health answers 503 this long, like weights loading.")
    warmup_requests: int = Field(3, ge=0, description="First requests after start pay a warm-up penalty.")
    warmup_penalty_ms: float = Field(400.0, ge=0, description="Extra prefill time of the first request (tapers).")
    sampler_compile_ms: float = Field(
        0.0, ge=0, description="vLLM 0.26 compiles its top-p/top-k kernel the first time 8 or more sampled rows decode "
        "together (once for batch sizes divisible by 16, once for the rest): the step that meets it takes this much "
        "longer. 2140 stalled every stream on the lent H100. 0: off.",
    )  # fmt: skip
    speed: float = Field(1.0, gt=0, description="Time scale: 2 runs the modelled card twice as fast.")
    enable_admin: bool = Field(False, description="Serve GET/POST /admin/faults (404 otherwise).")
    log_level: str = Field("INFO", description="Python log level.")

    @model_validator(mode="after")
    def _auto_tools_need_a_parser(self) -> SimSettings:
        if self.enable_auto_tool_choice and not self.tool_call_parser:  # vLLM's check at start (cli_args.py)
            raise ValueError("--enable-auto-tool-choice requires --tool-call-parser")
        return self
