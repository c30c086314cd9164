"""The GPUs llmwatch sizes and simulates, and the cost model of one vLLM engine step on them, for
DeepSeek-R1-Distill-Qwen-1.5B in FP16 (model.py). The simulator paces itself by it, the load test's report and the
benchmarks compare measured speeds with it.

A decode step reads every weight once (memory-bound) and does ~2 FLOPs per parameter per scheduled token
(compute-bound); the slower of the two wins, plus a fixed launch/scheduling overhead. Batching amortises the
weight read, which is why aggregate tokens/s grows with the batch while one stream stays at ~bandwidth/weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmwatch.vllm.cache import BLOCK_SIZE
from llmwatch.vllm.model import FLOPS_PER_TOKEN, FP16_WEIGHT_BYTES, KV_BYTES_PER_TOKEN

GIB = 1024**3


@dataclass(frozen=True)
class Gpu:
    name: str  # the id flags take (`--gpu-profile`, `--gpu`)
    memory_bytes: float
    bandwidth: float  # memory bandwidth, bytes/s (the datasheet's, which decode kernels nearly reach)
    flops: float  # FP16 FLOP/s actually reached by prefill and large batches
    overhead_s: float  # per-step launch + scheduler time
    activation_bytes: float  # what vLLM's profiling run reserves besides weights and KV cache

    def step_seconds(self, scheduled_tokens: int, context_tokens: int) -> float:
        """Wall time of one step that computes ``scheduled_tokens`` and reads ``context_tokens`` of KV cache."""
        if scheduled_tokens <= 0:
            return 0.0
        memory = (FP16_WEIGHT_BYTES + context_tokens * KV_BYTES_PER_TOKEN) / self.bandwidth
        compute = scheduled_tokens * FLOPS_PER_TOKEN / self.flops
        return max(memory, compute) + self.overhead_s

    def kv_cache_bytes(self, gpu_memory_utilization: float) -> float:
        return self.memory_bytes * gpu_memory_utilization - FP16_WEIGHT_BYTES - self.activation_bytes

    def num_gpu_blocks(self, gpu_memory_utilization: float) -> int:
        """KV-cache blocks: (card memory x utilization - weights - activations) / (16 tokens x 28 KiB)."""
        return max(0, math.floor(self.kv_cache_bytes(gpu_memory_utilization) / (BLOCK_SIZE * KV_BYTES_PER_TOKEN)))


GPUS: dict[str, Gpu] = {
    # 360 GB/s GDDR6 -> ~100 tok/s for one stream; ~13 TFLOP/s sustained FP16 tensor throughput.
    "rtx3060": Gpu("rtx3060", 12 * GIB, 360e9, 13e12, 1.0e-4, 1.0 * GIB),
    # 1008 GB/s GDDR6X -> ~280 tok/s for one stream.
    "rtx4090": Gpu("rtx4090", 24 * GIB, 1008e9, 80e12, 5.0e-5, 1.0 * GIB),
    # 3.35 TB/s HBM3 (SXM) -> ~850 tok/s for one stream.
    "h100": Gpu("h100", 80 * GIB, 3.35e12, 400e12, 1.0e-4, 2.0 * GIB),
}
