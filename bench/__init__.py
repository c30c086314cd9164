"""The gateway overhead benchmark: `python bench/overhead.py` (or `make bench`); see docs/benchmark.md."""
