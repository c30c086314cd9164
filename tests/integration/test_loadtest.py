"""The Locust load test against a real simulator + gateway: its numbers agree with the gateway's access log, the
gate passes and fails when it should, distributed runs lose no request, and open loop holds its rate."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmwatch.demo.localstack import LocalStack
from llmwatch.prom import Prometheus
from llmwatch.vllm.model import SERVE_FLAGS
from tests.support import REPO, free_port, llmwatch_cmd, need_binary, running, sim_cmd, wait_until
from tests.support.locust_run import run_locust

pytestmark = pytest.mark.integration


@dataclass
class Stack:
    sim: str
    gateway: str
    access_log: Path

    def chat_lines(self) -> list[dict[str, Any]]:
        if not self.access_log.exists():
            return []
        lines = [json.loads(x) for x in self.access_log.read_text().splitlines() if x.strip()]
        return [line for line in lines if line["path"] == "/v1/chat/completions" and line["kind"] == "chat"]

    def faults(self, **patch: float) -> None:
        httpx.post(f"{self.sim}/admin/faults", json=patch, timeout=5).raise_for_status()

    def settle(self, count: int) -> list[dict[str, Any]]:
        """The chat lines once ``count`` are written (the access log is written by a background thread)."""
        return wait_until(lambda: len(self.chat_lines()) >= count and self.chat_lines(), 10, f"{count} chat lines")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Simulator (rtx3060 modelled 8x faster, 16 sequences, admin on) behind a gateway."""
    tmp = tmp_path_factory.mktemp("loadtest-stack")
    sim_port, gw_port = free_port(), free_port()
    sim = sim_cmd(sim_port, *SERVE_FLAGS, "--gpu-profile", "rtx3060", "--speed", "8",
                  "--max-num-seqs", "16", "--enable-admin")  # fmt: skip
    gateway = llmwatch_cmd(
        "gateway", "--upstream", f"http://127.0.0.1:{sim_port}", "--host", "127.0.0.1", "--port", str(gw_port),
        "--log-file", str(tmp / "access.log"), "--no-log-stdout",
    )  # fmt: skip
    local = LocalStack(tmp)
    try:
        local.start("sim", sim, f"http://127.0.0.1:{sim_port}/health")
        local.start("gateway", gateway, f"http://127.0.0.1:{gw_port}/healthz")
        yield Stack(f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{gw_port}", tmp / "access.log")
    finally:
        local.stop()


def fresh(stack: Stack, tmp_path: Path, **faults: float) -> int:
    """Reset the faults to ``faults``; the number of chat lines logged so far."""
    stack.faults(**{"ttft_delay_ms": 0.0, **faults})
    return len(stack.chat_lines())


def scaled_slo(tmp_path: Path, ttft: float) -> str:
    """loadtest/slo.yml with targets a simulator 8x faster than an RTX 3060 meets (or misses, with a small ttft)."""
    doc = yaml.safe_load((REPO / "loadtest" / "slo.yml").read_text())
    doc["per_request"]["ttft_seconds"]["max"] = ttft
    doc["per_request"]["stream_decode_tokens_per_second"] = {"min": 100}
    doc["slos"]["ttft_p50_seconds"]["max"] = ttft
    doc["slos"]["ttft_p99_seconds"]["max"] = ttft
    doc["slos"]["output_tokens_per_second"]["min"] = 300
    doc["slos"]["goodput_requests_per_second"]["min"] = 1
    path = tmp_path / "slo.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def test_closed_loop_agrees_with_the_access_log_and_passes_scaled_targets(stack: Stack, tmp_path: Path) -> None:
    before = fresh(stack, tmp_path, ttft_delay_ms=150)  # TTFT well above the gateway's own overhead
    # 96 tokens often end inside the thinking: those answers are reasoning-only, accepted here (the run is short).
    run = run_locust(tmp_path / "out", stack.gateway, "-u", "6", "-r", "6", "-t", "8s", "--max-tokens", "96",
                     "--slo", scaled_slo(tmp_path, 1.0), "--accept-reasoning-only")  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    assert "PASS: every SLO met" in run.output
    samples = run.samples()
    lines = stack.settle(before + len(samples))[before:]
    assert len(lines) == len(samples), "every request Locust completed has exactly one access-log line"
    assert all(line["status"] == 200 for line in lines)
    by_id = {line["request_id"]: line for line in lines}
    assert by_id.keys() == {s["request_id"] for s in samples}
    # One rule for what an answer is: the load test and the gateway agree on every request's kind.
    assert all(by_id[s["request_id"]]["answer_kind"] == s["answer_kind"] for s in samples)
    assert run.summary()["requests"]["answers"]["reasoning_only"] > 0
    assert "counted as answers because --accept-reasoning-only was given" in run.output
    for field, logged in (("ttft", "ttft_ms"), ("tpot", "tpot_ms")):
        ours = statistics.median(s[field] for s in samples)
        theirs = statistics.median(by_id[s["request_id"]][logged] / 1000 for s in samples)
        assert abs(ours - theirs) <= 0.1 * theirs, f"{field}: Locust median {ours:.4f} s, gateway {theirs:.4f} s"
    summary = run.summary()
    assert summary["requests"]["warmup"] == 4 and summary["requests"]["measured"] == len(samples) - 4
    assert {r["slo"]: r["status"] for r in summary["slos"]} == {
        "ttft_p50_seconds": "PASS", "ttft_p99_seconds": "PASS", "output_tokens_per_second": "PASS",
        "goodput_requests_per_second": "PASS", "gpu_memory_bytes": "NOT MEASURED",
    }  # fmt: skip
    report = (tmp_path / "out" / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 4, "four plots, embedded"
    assert "src='http" not in report and 'src="http' not in report and "<link" not in report, "self-contained"


def test_gate_fails_and_names_the_slo_when_the_engine_is_slow(stack: Stack, tmp_path: Path) -> None:
    fresh(stack, tmp_path, ttft_delay_ms=1500)
    try:
        run = run_locust(tmp_path / "out", stack.gateway, "-u", "4", "-r", "4", "-t", "6s", "--max-tokens", "32",
                         "--warmup-requests", "0", "--slo", scaled_slo(tmp_path, 1.0),
                         "--accept-reasoning-only")  # fmt: skip
    finally:
        fresh(stack, tmp_path)
    assert run.returncode == 1, run.output[-3000:]
    verdict = next(line for line in run.output.splitlines() if line.startswith("FAIL: "))
    assert "ttft_p50_seconds" in verdict and "ttft_p99_seconds" in verdict, verdict
    assert run.row("ttft_p50_seconds")["measured"] > 1.5
    assert "missed a per-request SLO" in run.row("goodput_requests_per_second")["note"]


def test_open_loop_with_two_processes_holds_its_rate_without_a_burst_and_loses_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    rate, seconds = 40.0, 20
    before = fresh(stack, tmp_path)
    run = run_locust(tmp_path / "out", stack.gateway, "--processes", "2", "-u", "64", "-r", "1000",
                     "-t", f"{seconds}s", "--rate", str(rate), "--seed", "1", "--max-tokens", "8",
                     "--warmup-requests", "0")  # fmt: skip
    samples = run.samples()
    assert samples, run.output[-3000:]
    lines = stack.settle(before + len(samples))[before:]
    assert len(lines) == len(samples) == run.summary()["requests"]["total"], "a request went missing"
    starts = sorted(s["start"] for s in samples)
    assert abs(len(starts) / seconds - rate) <= 0.1 * rate, f"{len(starts)} requests in {seconds} s"
    # Closed loop would send all 64 users' first requests at once; Poisson at 40/s puts ~4 in the first 100 ms.
    first = [t for t in starts if t < starts[0] + 0.1]
    assert len(first) <= 15, f"{len(first)} requests in the first 100 ms: a burst at start"


def test_gpu_memory_comes_from_prometheus(stack: Stack, tmp_path: Path) -> None:
    """A real Prometheus scraping the simulator and a dcgm-exporter exposition: the peak framebuffer use is judged
    against the budget, and the report says which quantity it measured."""
    fresh(stack, tmp_path)
    dcgm_dir = tmp_path / "dcgm"
    dcgm_dir.mkdir()
    # dcgm-exporter's exposition: framebuffer used in MiB, per GPU.
    (dcgm_dir / "metrics").write_text(
        "# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).\n# TYPE DCGM_FI_DEV_FB_USED gauge\n"
        'DCGM_FI_DEV_FB_USED{gpu="0",modelName="NVIDIA GeForce RTX 3060"} 2500\n'
    )
    dcgm_port, prom_port = free_port(), free_port()
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [
        {"job_name": "vllm", "static_configs": [{"targets": [stack.sim.removeprefix("http://")]}]},
        {"job_name": "dcgm", "static_configs": [{"targets": [f"127.0.0.1:{dcgm_port}"]}]},
    ]}  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    http = [sys.executable, "-m", "http.server", str(dcgm_port), "--bind", "127.0.0.1", "--directory", str(dcgm_dir)]
    prom = [need_binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"]  # fmt: skip
    prom_url = f"http://127.0.0.1:{prom_port}"
    with (
        running(http, tmp_path / "dcgm.log", f"http://127.0.0.1:{dcgm_port}/metrics"),
        running(prom, tmp_path / "prometheus.log", f"{prom_url}/-/ready"),
    ):

        def scraped() -> bool:
            return bool(Prometheus(prom_url, timeout=5).query("DCGM_FI_DEV_FB_USED"))

        wait_until(scraped, 20, "Prometheus to scrape the dcgm-exporter exposition")
        run = run_locust(tmp_path / "out", stack.gateway, "-u", "2", "-r", "2", "-t", "6s", "--max-tokens", "16",
                         "--warmup-requests", "0", "--prometheus", prom_url)  # fmt: skip
    row = run.row("gpu_memory_bytes")
    assert row["measured"] == 2500 * 1024**2 and row["status"] == "PASS", run.output[-2000:]
    assert "DCGM_FI_DEV_FB_USED" in run.summary()["gpu_memory"]["measured"]


def test_step_sweep_finds_the_highest_rate_that_meets_the_slos(stack: Stack, tmp_path: Path) -> None:
    """Two open-loop steps: 2 req/s is carried; 200 req/s is not (8 users cannot send that many), so 2 is the answer."""
    fresh(stack, tmp_path)
    run = run_locust(tmp_path / "out", stack.gateway, "-u", "8", "-r", "8", "--step-rates", "2,200",
                     "--step-seconds", "5", "--max-tokens", "64", "--warmup-requests", "0",
                     "--slo", scaled_slo(tmp_path, 1.0), "--accept-reasoning-only",
                     locustfile="loadtest/sweep.py")  # fmt: skip
    steps = run.summary()["sweep"]
    assert [(s["rate"], s["status"], s["highest_passing"]) for s in steps] == [
        (2.0, "PASS", True), (200.0, "FAIL", False),
    ], run.output[-3000:]  # fmt: skip
    assert steps[1]["requests"] < 0.9 * 200 * 5, "8 users cannot offer 200 req/s"
