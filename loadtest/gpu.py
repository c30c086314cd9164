"""GPU facts for the report: memory used during the run (from Prometheus) and one stream's decode ceiling."""

from __future__ import annotations

from llmwatch.prom import Prometheus, QueryError, Unreachable
from llmwatch.vllm.gpus import GPUS

MIB = 1024**2


def _peak(prometheus: str, expr: str, seconds: float) -> float | None:
    query = f"max_over_time(({expr})[{max(1, round(seconds))}s:5s])"
    return Prometheus(prometheus, timeout=10.0).value(query)


def memory(prometheus: str, seconds: float) -> tuple[float | None, str]:
    """(peak bytes or None, which quantity was measured) over the last ``seconds``."""
    if not prometheus:
        return None, "not measured: pass --prometheus URL (dcgm-exporter's DCGM_FI_DEV_FB_USED)"
    try:
        used = _peak(prometheus, "max(DCGM_FI_DEV_FB_USED)", seconds)
        if used is not None:
            return used * MIB, "peak framebuffer memory used (dcgm-exporter DCGM_FI_DEV_FB_USED), whole card"
        kv = _peak(prometheus, "max(vllm:kv_cache_usage_perc)", seconds)
    except (Unreachable, QueryError) as exc:
        return None, f"not measured: Prometheus at {prometheus} did not answer ({exc})"
    if kv is not None:
        return None, (
            f"not measured in bytes (no dcgm-exporter series); vLLM's KV-cache usage peaked at {kv:.0%} of the "
            "cache it preallocated (--gpu-memory-utilization)"
        )
    return None, "not measured: Prometheus has neither DCGM_FI_DEV_FB_USED nor vllm:kv_cache_usage_perc"


def stream_ceiling(gpu: str) -> float | None:
    """One stream's decode tokens/s when every step reads the FP16 weights once (memory-bandwidth bound)."""
    profile = GPUS.get(gpu)
    return None if profile is None else 1.0 / profile.step_seconds(1, 0)
