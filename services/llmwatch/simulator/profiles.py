"""GPU profiles and the cost model of one engine step, for DeepSeek-R1-Distill-Qwen-1.5B in FP16.

A decode step reads every weight once (memory-bound) and does ~2 FLOPs per parameter per scheduled token
(compute-bound); the slower of the two wins, plus a fixed launch/scheduling overhead. Batching amortises the
weight read, which is why aggregate tokens/s grows with the batch while one stream stays at ~bandwidth/weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 1024**3
BLOCK_SIZE = 16  # vLLM's default KV block size, in tokens

# Qwen2-1.5B geometry (the distill's base): 28 layers, 2 KV heads of 128 dims, FP16.
PARAMS = 1.78e9
WEIGHT_BYTES = 3.56e9
KV_BYTES_PER_TOKEN = 2 * 28 * 2 * 128 * 2  # K and V, layers, kv heads, head dim, bytes per FP16
FLOPS_PER_TOKEN = 2 * PARAMS


@dataclass(frozen=True)
class GpuProfile:
    name: str
    memory_bytes: float
    bandwidth: float  # bytes/s actually reached by decode kernels
    flops: float  # FP16 FLOP/s actually reached by prefill and large batches
    overhead_s: float  # per-step launch + scheduler time
    activation_bytes: float  # what vLLM's profiling run reserves besides weights and KV cache

    def step_seconds(self, scheduled_tokens: int, context_tokens: int) -> float:
        """Wall time of one step that computes ``scheduled_tokens`` and reads ``context_tokens`` of KV cache."""
        if scheduled_tokens <= 0:
            return 0.0
        memory = (WEIGHT_BYTES + context_tokens * KV_BYTES_PER_TOKEN) / self.bandwidth
        compute = scheduled_tokens * FLOPS_PER_TOKEN / self.flops
        return max(memory, compute) + self.overhead_s

    def kv_cache_bytes(self, gpu_memory_utilization: float) -> float:
        return self.memory_bytes * gpu_memory_utilization - WEIGHT_BYTES - self.activation_bytes

    def num_gpu_blocks(self, gpu_memory_utilization: float) -> int:
        """KV-cache blocks: (card memory x utilization - weights - activations) / (16 tokens x 28 KiB)."""
        return max(0, math.floor(self.kv_cache_bytes(gpu_memory_utilization) / (BLOCK_SIZE * KV_BYTES_PER_TOKEN)))


PROFILES: dict[str, GpuProfile] = {
    # 360 GB/s GDDR6 -> ~100 tok/s for one stream; ~13 TFLOP/s sustained FP16 tensor throughput.
    "rtx3060": GpuProfile("rtx3060", 12 * GIB, 360e9, 13e12, 1.0e-4, 1.0 * GIB),
    # 1008 GB/s GDDR6X -> ~280 tok/s for one stream.
    "rtx4090": GpuProfile("rtx4090", 24 * GIB, 1008e9, 80e12, 5.0e-5, 1.0 * GIB),
    # 3.35 TB/s HBM3 (SXM) -> ~850 tok/s for one stream.
    "h100": GpuProfile("h100", 80 * GIB, 3.35e12, 400e12, 1.0e-4, 2.0 * GIB),
}
