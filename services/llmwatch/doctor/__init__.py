"""`llmwatch doctor`: the operator's bottleneck path (TTFT, warm-up, prompts, KV cache, batch) over live metrics."""
