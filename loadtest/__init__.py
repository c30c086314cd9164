"""The Locust load test of an OpenAI-compatible endpoint: vLLM-exact stream timings, the SLO gate, the report.

`locust -f loadtest/locustfile.py --host URL` runs it; docs/loadtest.md explains every number.
"""
