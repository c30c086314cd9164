"""Facts about the outside world that llmwatch follows: vLLM's metric names and buckets, the model's numbers and
the GPUs it runs on. This package imports nothing of llmwatch's, as vLLM keeps its buckets in
`vllm/v1/metrics/buckets.py`; the gateway, the simulator, the doctor, the load test and the benchmarks read it."""
