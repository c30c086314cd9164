"""`llmwatch demo`: the whole local path on 127.0.0.1 with no Docker and no GPU."""
