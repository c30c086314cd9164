"""llmwatch: run a small reasoning LLM in production and see what it is doing."""

__version__ = "0.1.0"
