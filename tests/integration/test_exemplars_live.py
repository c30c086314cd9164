"""The real Prometheus (exemplar storage on) scraping the gateway under load: each latency bucket names a request
whose access-log line is there, with a duration inside that bucket."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmwatch.gateway.metrics import DURATION_BUCKETS
from tests.support import GatewayFactory, free_port, need_binary, running, wait_until

pytestmark = pytest.mark.integration

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"


def test_exemplars_link_latency_buckets_to_logged_requests(
    start_gateway: GatewayFactory, sim_url: str, tmp_path: Path
) -> None:
    gw = start_gateway(sim_url)
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "gateway", "static_configs": [{"targets": [gw.url.removeprefix("http://")]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    args = [need_binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage"]  # fmt: skip
    with running(args, tmp_path / "prometheus.log", f"http://127.0.0.1:{port}/-/ready", timeout=30):
        started = time.time()
        for n in range(30):
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"question {n}"}],
                "max_tokens": 5 + 20 * n,
            }
            assert httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=30).status_code == 200
        lines = {line["request_id"]: line for line in gw.wait_lines(30)}

        def exemplars() -> list[dict[str, Any]]:
            params = {"query": "llmwatch_request_duration_seconds_bucket", "start": started - 5, "end": time.time()}
            data = httpx.get(f"http://127.0.0.1:{port}/api/v1/query_exemplars", params=params, timeout=5).json()
            found = [(s["seriesLabels"], e) for s in data["data"] for e in s["exemplars"]]
            return found if len(found) >= 3 else []

        found = wait_until(exemplars, 20, "exemplars in Prometheus")
    for series, exemplar in found:
        rid = exemplar["labels"]["request_id"]
        assert rid in lines, f"exemplar {rid} names no logged request"
        seconds = lines[rid]["duration_ms"] / 1000.0
        assert abs(float(exemplar["value"]) - seconds) < 0.002
        upper = math.inf if series["le"] == "+Inf" else float(series["le"])
        assert seconds <= upper, (rid, seconds, upper)
        lower = max((b for b in DURATION_BUCKETS if b < upper), default=0.0)
        assert seconds > lower, (rid, seconds, lower)
