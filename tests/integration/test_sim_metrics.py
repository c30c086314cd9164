"""/metrics of a real `llmwatch sim` equals llmwatch.vllm.metrics.VLLM_METRICS: names, types, help texts, labels,
the label values created at start, and buckets."""

from __future__ import annotations

import math

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmwatch.vllm.metrics import CACHE_CONFIG_LABELS, REMOVED_METRICS, VLLM_METRICS
from llmwatch.vllm.spec import histogram_buckets

pytestmark = pytest.mark.integration
SPEC_PREFIXES = ("vllm:", "http_")
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"


def _families(sim_url: str) -> dict[str, object]:
    text = httpx.get(f"{sim_url}/metrics").text
    assert not any(removed in text for removed in REMOVED_METRICS)
    help_lines = set(text.splitlines())
    for spec in VLLM_METRICS:  # from the raw text: the parser strips the trailing space some help texts have
        assert f"# HELP {spec.exposed_name} {spec.documentation}" in help_lines, spec.name
    # `*_created` are prometheus_client's creation timestamps (vLLM exposes them too), not families of the spec
    return {
        f.name: f
        for f in text_string_to_metric_families(text)
        if f.name.startswith(SPEC_PREFIXES) and not f.name.endswith("_created")
    }


def test_every_vllm_series_exists_before_the_first_request(sim_url: str) -> None:
    families = _families(sim_url)
    for spec in VLLM_METRICS:
        if not spec.name.startswith("vllm:"):
            continue  # the instrumentator creates http_* series on the first request, as in vLLM
        samples = [s for s in families[spec.name].samples if not s.name.endswith("_created")]  # type: ignore[attr-defined]
        assert samples, f"{spec.name} has no series at start"
        if spec.values:
            assert {s.labels[spec.labels[-1]] for s in samples} == set(spec.values), spec.name


def test_exposition_equals_the_spec(sim_url: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True}
    with httpx.stream("POST", f"{sim_url}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        response.read()
    families = _families(sim_url)
    assert set(families) == {spec.name for spec in VLLM_METRICS}
    for spec in VLLM_METRICS:
        family = families[spec.name]
        assert family.type == spec.type, spec.name  # type: ignore[attr-defined]
        samples = family.samples  # type: ignore[attr-defined]
        assert samples, f"{spec.name} has no sample"
        for sample in samples:
            labels = set(sample.labels) - {"le", "quantile"}
            assert labels == set(spec.labels), (spec.name, sample.labels)
        if spec.values:
            assert {s.labels[spec.labels[-1]] for s in samples} == set(spec.values), spec.name
        if spec.type == "histogram":
            bounds = sorted({float(s.labels["le"]) for s in samples if s.name.endswith("_bucket")})
            assert bounds == [*map(float, histogram_buckets(spec, 4096)), math.inf], spec.name
    assert len(CACHE_CONFIG_LABELS) == len(set(CACHE_CONFIG_LABELS))


def _sample(families: dict[str, object], name: str, suffix: str = "", **labels: str) -> float:
    family = families[name]
    for sample in family.samples:  # type: ignore[attr-defined]
        matches = all(sample.labels.get(k) == v for k, v in labels.items())
        if matches and sample.name.endswith(suffix) and not sample.name.endswith("_created"):
            return float(sample.value)
    raise AssertionError(f"no {name}{suffix} sample with {labels}")


def test_values_follow_the_requests(sim_url: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 7}
    for _ in range(2):
        assert httpx.post(f"{sim_url}/v1/chat/completions", json=body).status_code == 200
    assert httpx.post(f"{sim_url}/v1/chat/completions", json={**body, "model": "x"}).status_code == 404
    f = _families(sim_url)
    engine = {"model_name": MODEL, "engine": "0"}
    assert _sample(f, "vllm:generation_tokens", **engine) == 14
    assert _sample(f, "vllm:prompt_tokens", **engine) == 2 * 6
    assert _sample(f, "vllm:prompt_tokens_by_source", source="local_compute", **engine) == 2 * 6
    assert _sample(f, "vllm:prompt_tokens_by_source", source="local_cache_hit", **engine) == 0
    assert _sample(f, "vllm:prompt_tokens_cached_by_source", source="device", **engine) == 0
    assert _sample(f, "vllm:request_success", finished_reason="length") == 2
    assert _sample(f, "vllm:request_success", finished_reason="stop") == 0
    assert _sample(f, "vllm:request_num_preemptions", "_count", **engine) == 2
    assert _sample(f, "vllm:num_requests_waiting_by_reason", reason="capacity", **engine) == 0
    assert _sample(f, "vllm:admission_rejections", model_name=MODEL, reason="max_num_queued_reqs") == 0
    assert _sample(f, "vllm:estimated_flops_per_gpu", **engine) == 0
    info = {"block_size": "16", "gpu_memory_utilization": "0.9", "enable_prefix_caching": "True", "engine": "0"}
    assert _sample(f, "vllm:cache_config_info", **info) == 1
    assert _sample(f, "vllm:engine_sleep_state", sleep_state="awake") == 1
    assert _sample(f, "vllm:engine_sleep_state", sleep_state="discard_all") == 0
    assert _sample(f, "http_requests", handler="/v1/chat/completions", status="2xx", method="POST") == 2
    assert _sample(f, "http_requests", handler="/v1/chat/completions", status="4xx", method="POST") == 1
    assert _sample(f, "vllm:time_to_first_token_seconds", "_count", **engine) == 2
