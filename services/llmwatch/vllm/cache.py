"""vLLM's KV-cache paging default (`vllm/config/cache.py`, CacheConfig.block_size on CUDA)."""

from __future__ import annotations

BLOCK_SIZE = 16  # tokens per KV-cache block
