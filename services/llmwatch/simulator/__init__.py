"""`llmwatch sim`: a vLLM-0.33-compatible simulator of DeepSeek-R1-Distill-Qwen-1.5B."""
