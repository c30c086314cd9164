"""The GPU check: the real engine in the loop (`python -m bench.gpu_check`, `make gpu-check`; docs/gpu-check.md).

engine: compose's command for the engine; samplers: card memory and engine gauges; record: the run's record;
correctness: the openai SDK checks; sweep: the KPI sweep; gate: the load-test gate; report: REPORT.md;
__main__: the flags and the run's order.
"""
