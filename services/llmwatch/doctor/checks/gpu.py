"""GPU memory: vLLM's preallocated share against what the card holds and the operator's budget; llama.cpp's use."""

from __future__ import annotations

from llmwatch.doctor.checks import queries as q
from llmwatch.doctor.checks.base import Check, ev
from llmwatch.doctor.context import Context, Skip
from llmwatch.doctor.finding import Action, Finding
from llmwatch.vllm.model import FP16_WEIGHT_BYTES

WEIGHTS = f"{FP16_WEIGHT_BYTES / 1e9:.2f} GB"
# The switch for a GPU too small for vLLM's FP16 weights: llama.cpp with CUDA on the Q4_K_M GGUF (docs/edge.md).
GPU_Q4 = "docker compose --profile gpu-q4 up -d"


def gpu_memory(ctx: Context) -> Finding | None:
    used_q, total_q = q.FB_USED_RATIO, q.FB_TOTAL_BYTES
    gpus = ctx.prom.query(used_q)
    if not gpus:
        raise Skip("no dcgm-exporter framebuffer metrics (a CPU engine, the simulator, or dcgm-exporter not scraped)")
    used = max(s.value for s in gpus)
    card = max(s.value for s in ctx.prom.query(total_q))
    # llama.cpp publishes no cache config and preallocates no share of the card: judge what it uses.
    if ctx.value(q.ENGINE_INFO_COUNT) is None and ctx.value(q.LLAMACPP_COUNT):
        return _llamacpp_memory(ctx, used, card)
    share = ctx.limit("threshold:gpu_vllm_memory_share:max")
    margin = ctx.threshold("threshold:gpu_memory_margin_ratio:max")
    evidence = [ev("fb_used_ratio", used, q.peak(used_q)),
                ctx.evidence("vllm_memory_share", "threshold:gpu_vllm_memory_share:max"),
                ctx.evidence("margin", "threshold:gpu_memory_margin_ratio:max")]  # fmt: skip
    budget = ctx.optional_threshold("threshold:kpi_gpu_memory_bytes:max")
    over_share = used > share.value + margin
    over_budget = budget is not None and share.value * card > budget
    if budget is not None:
        evidence += [ev("card_bytes", card, q.peak(total_q)), ctx.evidence("budget_bytes",
                     "threshold:kpi_gpu_memory_bytes:max")]  # fmt: skip
    if not over_share and not over_budget:
        return None
    four_bit = (f"a 4-bit model holds its weights in ~1.2 GB: the `gpu-q4` profile (`{GPU_Q4}`: llama.cpp with CUDA "
                "on the Q4_K_M GGUF, docs/edge.md), or AWQ on vLLM (--quantization awq)")  # fmt: skip
    if over_share:
        return Finding("gpu_memory", "warning", f"GPU memory {used:.0%} in use, beyond vLLM's preallocated "
                       f"{share.value:.0%} + {margin:.0%} margin", evidence, Action(
            "vLLM takes --gpu-memory-utilization of the card up front, so use near it is expected; more means "
            "another process (see `nvidia-smi`) or a leak. Lower the engine's share if the card is shared; if the "
            f"card is too small for vLLM, {four_bit}.", "--gpu-memory-utilization",
            f"{max(0.1, share.value - (used - share.value)):.2f}",
        ))  # fmt: skip
    assert budget is not None
    title = (f"vLLM preallocates {share.value * card / 1e9:.1f} GB, beyond the GPU-memory budget of "
             f"{budget / 1e9:.1f} GB in the operator's KPI targets")  # fmt: skip
    if budget < FP16_WEIGHT_BYTES:
        return Finding("gpu_memory", "info", title, evidence, Action(
            f"The FP16 weights alone are {WEIGHTS}, so vLLM cannot meet this budget with them: {four_bit}.",
            GPU_Q4))  # fmt: skip
    return Finding("gpu_memory", "info", title, evidence, Action(
        "Set the engine's share to the budget.", "--gpu-memory-utilization", f"{budget / card:.2f}"))  # fmt: skip


def _llamacpp_memory(ctx: Context, used: float, card: float) -> Finding | None:
    """llama.cpp as the engine: the card nearly full, or more in use than the operator's GPU-memory budget."""
    used_bytes = ctx.value(q.FB_USED_BYTES) or used * card
    margin = ctx.threshold("threshold:gpu_memory_margin_ratio:max")
    budget = ctx.optional_threshold("threshold:kpi_gpu_memory_bytes:max")
    engines = ctx.value(q.LLAMACPP_COUNT) or 0.0
    evidence = [ev("fb_used_ratio", used, q.peak(q.FB_USED_RATIO)), ev("fb_used_bytes", used_bytes, q.FB_USED_BYTES),
                ev("card_bytes", card, q.peak(q.FB_TOTAL_BYTES)), ev("llamacpp_engines", engines, q.LLAMACPP_COUNT),
                ctx.evidence("margin", "threshold:gpu_memory_margin_ratio:max")]  # fmt: skip
    if budget is not None:
        evidence.append(ctx.evidence("budget_bytes", "threshold:kpi_gpu_memory_bytes:max"))
    if used > 1 - margin:
        return Finding("gpu_memory", "warning", f"GPU memory {used:.0%} in use with llama.cpp as the engine: less "
                       f"than the {margin:.0%} margin left", evidence, Action(
            "llama.cpp allocates the offloaded weights (--n-gpu-layers) and the KV cache of every slot (--parallel "
            "x the context per slot) when it starts; a card this full has another process on it (see `nvidia-smi`) "
            "or too much context. Lower LLAMA_CTX_SIZE or LLAMA_PARALLEL in .env.", "--parallel",
            "fewer slots (LLAMA_PARALLEL)",
        ))  # fmt: skip
    if budget is None or used_bytes <= budget:
        return None
    return Finding("gpu_memory", "warning", f"llama.cpp uses {used_bytes / 1e9:.2f} GB of GPU memory, beyond the "
                   f"{budget / 1e9:.1f} GB budget of the operator's KPI targets", evidence, Action(
        f"llama.cpp holds the weights plus the KV cache of every slot. FP16 weights alone are {WEIGHTS}; the Q4_K_M "
        f"GGUF of the `gpu-q4` profile (`{GPU_Q4}`) holds them in ~1.1 GB (docs/edge.md has its measured use). "
        "With Q4_K_M already, lower the context per slot (LLAMA_CTX_SIZE) or the slots (LLAMA_PARALLEL).",
        "LLAMA_MODEL_FILE", "a Q4_K_M GGUF",
    ))  # fmt: skip


GPU_MEMORY = Check("gpu_memory", gpu_memory)
