"""`llmwatch doctor` against a real Prometheus 2.42 scraping `llmwatch sim`, `llmwatch gateway` and a fake
dcgm-exporter (tests/fakes/dcgm.py), with load through the gateway: each id of the path is produced by a simulator
configuration and must come first among the critical and warning findings, with evidence numbers that match.

One Prometheus serves every scenario, scraping each second; the doctor looks back WINDOW, and each windowed
scenario runs its load for WINDOW + SETTLE before the doctor is asked, so the window holds that scenario only.
Prometheus loads prometheus/rules/thresholds.yml and the engine-sizing rules rendered as compose renders them.
A second Prometheus scrapes the same targets with no rule file loaded (someone else's Prometheus): every scenario
asks the doctor of both, and both must give the same critical and warning ids.
Set LLMWATCH_DOCTOR_CAPTURE=<dir> to keep each scenario's text output (docs/doctor.md shows them).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmwatch.demo.localstack import LocalStack, Ports, local_prometheus_config
from llmwatch.prom import Prometheus, Sample
from llmwatch.render import engine_sizing
from llmwatch.vllm.model import SERVE_FLAGS
from tests.fakes.dcgm import FakeDcgm, Gpu
from tests.support import (
    REPO,
    Traffic,
    free_port,
    llmwatch_cmd,
    need_binary,
    serving,
    sim_cmd,
    wait_until,
)  # fmt: skip
from tests.support.llamacpp import METRICS_CAPTURE

pytestmark = pytest.mark.integration

WINDOW = "8s"
WINDOW_S = 8.0
SETTLE_S = 2.0  # requests of the previous scenario still in flight when it ends
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
CARD_MIB = 24564  # an RTX 4090: FB_USED + FB_FREE as dcgm-exporter reports it
# rtx4090: its ~3.6 ms decode steps are kept by the simulator even on a busy 2-core CI box (an H100's 1.2 ms are not).
# The engine's batch here is 4, not the stack's default: the rules Prometheus gets it rendered from the sizing
# template, and the doctor on the Prometheus without rules is told, as its text asks an operator to.
MAX_NUM_SEQS = "4"
SIM_FLAGS = ("--gpu-profile", "rtx4090", *SERVE_FLAGS, "--enable-admin", "--max-num-seqs",
             MAX_NUM_SEQS)  # fmt: skip


def chat(content: str, max_tokens: int = 512) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip


SHORT = chat("What is 17 * 23?")


@dataclass
class Stack:
    ports: Ports
    dcgm_port: int
    tmp: Path
    dcgm: FakeDcgm
    bare_port: int  # the Prometheus without rule files
    local: LocalStack  # every process; the engine and the gateway are restarted under new names
    restarts: int = 0
    dcgm_server: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{getattr(self.ports, service)}"

    def stop(self, role: str) -> None:
        """Stop the running ``role`` ("sim" or "gateway"), if any."""
        for name in [n for n in self.local.procs if n.split("-")[0] == role]:
            self.local.procs.pop(name).stop()

    def _restart(self, role: str, args: list[str], ready: str, timeout: float) -> None:
        self.stop(role)
        self.restarts += 1
        self.local.start(f"{role}-{self.restarts}", args, ready, timeout)

    def start_engine(self, *flags: str) -> None:
        """(Re)start the simulator on the same port with these flags added."""
        args = sim_cmd(self.ports.engine, *SIM_FLAGS, *flags)
        self._restart("sim", args, f"{self.url('engine')}/health", 20)
        wait_until(lambda: httpx.get(f"{self.url('gateway')}/readyz").status_code == 200, 10, "the gateway ready")

    def start_gateway(self, *flags: str) -> None:
        """(Re)start the gateway on the same port with these flags added."""
        args = llmwatch_cmd(
            "gateway", "--upstream", self.url("engine"), "--host", "127.0.0.1", "--port", str(self.ports.gateway),
            "--no-log-stdout", "--health-interval", "0.5", *flags,
        )  # fmt: skip
        self._restart("gateway", args, f"{self.url('gateway')}/readyz", 60)

    def faults(self, **faults: object) -> None:
        answer = httpx.post(f"{self.url('engine')}/admin/faults", json=faults, timeout=5)
        assert answer.status_code == 200, answer.text

    def query(self, expr: str, bare: bool = False) -> list[Sample]:
        base = f"http://127.0.0.1:{self.bare_port}" if bare else self.url("prometheus")
        return Prometheus(base, timeout=5).query(expr)

    def both_see(self, expr: str, what: str) -> None:
        """Wait until both Prometheus servers give a result for ``expr``."""
        wait_until(lambda: self.query(expr) and self.query(expr, bare=True), 15, f"both Prometheus servers: {what}")

    def scraped_since(self, start: float) -> float:
        """Seconds after ``start`` (epoch) that both Prometheus servers have scraped the gateway through."""
        stamps = [self.query('timestamp(up{job="gateway"})', bare) for bare in (False, True)]
        return min(answer[0].value for answer in stamps) - start

    def load_for(self, seconds: float, body: dict[str, Any] = SHORT, workers: int = 2) -> Traffic:
        """``workers`` clients streaming ``body`` through the gateway back to back until both Prometheus servers
        hold ``seconds`` of it: on a busy machine a late scrape makes the load last longer, never the window short."""
        load = Traffic(self.url("gateway"), [body], workers, pause_s=0)
        start = time.time()
        with load.running():
            wait_until(lambda: self.scraped_since(start) >= seconds, seconds + 30,
                       f"both Prometheus servers to scrape {seconds:g} s of load", interval=0.5)  # fmt: skip
        return load

    def with_fault(
        self, scenario: str, fault: dict[str, object], clear: dict[str, object], workers: int = 2
    ) -> tuple[int, Any, Traffic]:
        """Load through ``fault`` for a whole window, ask the doctor, then clear the fault."""
        self.faults(**fault)
        try:
            load = self.load_for(WINDOW_S + SETTLE_S, workers=workers)
            code, report = self.doctor(scenario)
        finally:
            self.faults(**clear)
        return code, report, load

    def doctor(self, scenario: str, window: str = WINDOW) -> tuple[int, dict[str, Any]]:
        """The doctor's report from the Prometheus with the stack's rules, after checking that the one without
        them, asked at the same moment, gives the same exit code and the same critical and warning ids (its
        thresholds from the engine, the defaults and the one flag that says how this engine differs from them)."""
        targets = (
            (scenario, self.url("prometheus"), ()),
            (f"{scenario}-no-rules", f"http://127.0.0.1:{self.bare_port}", ("--max-num-seqs", MAX_NUM_SEQS)),
        )
        json_runs = {name: _doctor_process(url, window, "--json", *flags) for name, url, flags in targets}
        out = {name: process.communicate(timeout=60) for name, process in json_runs.items()}
        codes = {name: process.returncode for name, process in json_runs.items()}
        for name, (_, stderr) in out.items():
            assert codes[name] in (0, 1), stderr
        capture = os.environ.get("LLMWATCH_DOCTOR_CAPTURE")
        if capture:  # the text of the same runs, for docs/doctor.md (asked right after the JSON)
            texts = {name: _doctor_process(url, window, *flags) for name, url, flags in targets}
            Path(capture).mkdir(parents=True, exist_ok=True)
            for name, process in texts.items():
                (Path(capture) / f"{name}.txt").write_text(process.communicate(timeout=60)[0])
                (Path(capture) / f"{name}.json").write_text(out[name][0])
        report: dict[str, Any] = json.loads(out[scenario][0])
        bare: dict[str, Any] = json.loads(out[f"{scenario}-no-rules"][0])
        ids = [f["id"] for f in serious(report)]
        assert [f["id"] for f in serious(bare)] == ids, json.dumps([report, bare], indent=1)
        assert codes[scenario] == codes[f"{scenario}-no-rules"]
        assert {t["source"] for t in bare["thresholds"]} <= {"engine", "default", "flag"}, bare["thresholds"]
        assert not [n for n in bare["not_checked"] if "threshold:" in n["why"]], bare["not_checked"]
        return codes[scenario], report


def _doctor_process(prometheus: str, window: str, *flags: str) -> subprocess.Popen[str]:
    args = [*llmwatch_cmd("doctor", "--prometheus", prometheus, "--window", window), *flags]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def serious(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["severity"] in ("critical", "warning")]


def first(report: dict[str, Any], finding_id: str) -> dict[str, Any]:
    """The finding ``finding_id``, asserted first among the critical and warning findings."""
    found = serious(report)
    assert found and found[0]["id"] == finding_id, json.dumps(report, indent=1)
    return found[0]


def number(finding: dict[str, Any], name: str) -> float:
    values = [e["value"] for e in finding["evidence"] if e["name"] == name]
    assert values, f"no evidence {name!r} in {finding}"
    return float(values[0])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("doctor-live")
    ports = Ports(**{name: free_port() for name in Ports.model_fields})
    dcgm_port, bare_port = free_port(), free_port()
    sizing = engine_sizing.write(REPO, tmp / "rendered", {"VLLM_MAX_NUM_SEQS": MAX_NUM_SEQS})
    config = local_prometheus_config(REPO, ports, {"engine", "gateway"}, "1s", sizing)
    config["rule_files"] = [str(REPO / "prometheus/rules/thresholds.yml"), str(sizing)]
    config.pop("alerting", None)
    config["scrape_configs"].append({"job_name": "dcgm", "static_configs": [
        {"targets": [f"127.0.0.1:{dcgm_port}"], "labels": {"service": "dcgm-exporter"}}]})  # fmt: skip
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp / "bare").mkdir()
    (tmp / "bare" / "prometheus.yml").write_text(yaml.safe_dump({**config, "rule_files": []}, sort_keys=False))
    dcgm = FakeDcgm([Gpu(model="NVIDIA GeForce RTX 4090")])
    dcgm.set(DCGM_FI_DEV_FB_USED=round(CARD_MIB * 0.9), DCGM_FI_DEV_FB_FREE=CARD_MIB - round(CARD_MIB * 0.9),
             DCGM_FI_DEV_GPU_TEMP=55)  # fmt: skip
    local = LocalStack(tmp)
    stack = Stack(ports, dcgm_port, tmp, dcgm, bare_port, local)
    with contextlib.ExitStack() as exits, stack.dcgm_server:
        stack.dcgm_server.enter_context(dcgm.serve(dcgm_port))
        exits.callback(local.stop)
        # The first engine pays a warm-up penalty on its first 3 requests: the cold_start scenario runs first.
        local.start("sim-cold", sim_cmd(ports.engine, *SIM_FLAGS, "--warmup-requests", "3", "--warmup-penalty-ms",
                                        "3000"), f"{stack.url('engine')}/health", 20)  # fmt: skip
        stack.start_gateway()  # no warm-up: the cold_start scenario is what users meet without one
        local.start("prometheus", [
            need_binary("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'prometheus-data'}", f"--web.listen-address=127.0.0.1:{ports.prometheus}",
        ], f"{stack.url('prometheus')}/-/ready", 30)  # fmt: skip
        local.start("prometheus-bare", [
            need_binary("prometheus"), f"--config.file={tmp / 'bare' / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'bare' / 'data'}", f"--web.listen-address=127.0.0.1:{bare_port}",
        ], f"http://127.0.0.1:{bare_port}/-/ready", 30)  # fmt: skip
        scraped = 'up{job=~"vllm|gateway|dcgm"} == 1'
        wait_until(lambda: len(stack.query(scraped)) == len(stack.query(scraped, bare=True)) == 3, 60,
                   "both Prometheus servers scraping sim, gateway and dcgm")  # fmt: skip
        assert not stack.query('{__name__=~"threshold:.+"}', bare=True)
        yield stack


# Scenarios run in this order on the shared stack (pytest keeps file order).
def test_cold_start(stack: Stack) -> None:
    stack.load_for(10, workers=3)
    # The whole life of this engine, so the window holds its start (a real run looks back 5m).
    code, report = stack.doctor("cold_start", "60s")
    found = first(report, "cold_start")
    assert number(found, "engine_uptime_seconds") <= 60
    # 3 s of penalty on the first request, tapering over 3: their mean TTFT is well over a second.
    assert number(found, "first_requests_mean_ttft_seconds") >= 1.0
    assert number(found, "first_requests_mean_ttft_seconds") >= 2 * number(found, "recent_mean_ttft_seconds")
    assert found["action"]["flag"] == "llmwatch gateway --warmup"
    ids = [f["id"] for f in serious(report)]
    assert ids[:2] == ["cold_start", "ttft_high"], ids  # the symptom right after its cause
    assert report["findings"][1]["explained_by"] == "cold_start"
    assert code == 0


def test_healthy_run_has_no_critical_or_warning_finding(stack: Stack) -> None:
    stack.load_for(WINDOW_S + SETTLE_S)
    code, report = stack.doctor("healthy")
    assert serious(report) == [], json.dumps(report, indent=1)
    assert code == 0
    assert {"ttft_high", "queueing", "kv_cache_pressure", "decode_slow", "server_errors", "gpu_memory"} <= set(
        report["checked"]
    )


def test_gpu_memory_beyond_vllm_share(stack: Stack) -> None:
    stack.dcgm.set(DCGM_FI_DEV_FB_USED=round(CARD_MIB * 0.98), DCGM_FI_DEV_FB_FREE=CARD_MIB - round(CARD_MIB * 0.98))
    try:
        stack.both_see("DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 0.97",
                       "the new framebuffer use")  # fmt: skip
        _, report = stack.doctor("gpu_memory")
    finally:
        stack.dcgm.set(DCGM_FI_DEV_FB_USED=round(CARD_MIB * 0.9), DCGM_FI_DEV_FB_FREE=CARD_MIB - round(CARD_MIB * 0.9))
    found = first(report, "gpu_memory")
    assert number(found, "fb_used_ratio") == pytest.approx(0.98, abs=0.001)
    assert number(found, "vllm_memory_share") == 0.9  # the rendered rule, equal to the engine's own report
    assert found["action"]["flag"] == "--gpu-memory-utilization"
    assert "docker compose --profile gpu-q4 up -d" in found["action"]["why"]


def test_decode_slow(stack: Stack) -> None:
    _, report, _ = stack.with_fault("decode_slow", {"latency_multiplier": 4.0}, {"latency_multiplier": 1.0})
    found = first(report, "decode_slow")
    assert number(found, "floor_tokens_per_second") == 110  # the RTX 4090 floor: the fake GPU's modelName
    assert 20 < number(found, "stream_decode_tokens_per_second") < 110  # ~280 tokens/s / 4


def test_server_errors(stack: Stack) -> None:
    stack.load_for(SETTLE_S)  # the slow requests of the last scenario leave the window
    # As many clients as batch slots: a ratio of a coin flip per request needs enough requests in the window.
    fault = {"error_rate": 0.5, "error_status": 500}
    code, report, load = stack.with_fault("server_errors", fault, {"error_rate": 0}, workers=int(MAX_NUM_SEQS))
    found = first(report, "server_errors")
    assert 0.25 < number(found, "5xx_ratio") < 0.75
    assert load.statuses[500] > 0
    assert code == 1


def test_empty_responses(stack: Stack) -> None:
    _, report, _ = stack.with_fault(
        "empty_responses", {"empty_rate": 0.5}, {"empty_rate": 0.0}, workers=int(MAX_NUM_SEQS)
    )
    found = first(report, "empty_responses")
    assert 0.25 < number(found, "empty_ratio") < 0.75
    assert found["title"].endswith("the engine returned nothing")  # max_tokens 512 is never reached here


def test_prompt_too_long(stack: Stack) -> None:
    long_chat = chat("Summarise our conversation so far. " + "Earlier we talked about GPUs and batching. " * 290)
    plain = {k: v for k, v in long_chat.items() if k not in ("stream", "stream_options")}
    answer = httpx.post(f"{stack.url('gateway')}/v1/chat/completions", json=plain, timeout=60)
    assert answer.status_code == 200, answer.text
    prompt_tokens = answer.json()["usage"]["prompt_tokens"]
    assert prompt_tokens > 4096 / 2
    too_long = httpx.post(f"{stack.url('gateway')}/v1/chat/completions", json=chat("x " * 9000), timeout=60)
    assert too_long.status_code == 400
    stack.load_for(WINDOW_S + SETTLE_S, long_chat)
    _, report = stack.doctor("prompt_too_long")
    found = first(report, "prompt_too_long")
    assert number(found, "mean_prompt_tokens") == pytest.approx(prompt_tokens, rel=0.01)
    assert number(found, "max_model_len") == 4096
    assert found["action"]["flag"] == "--max-model-len"


def test_queueing(stack: Stack) -> None:
    stack.load_for(WINDOW_S + SETTLE_S, workers=12)
    _, report = stack.doctor("queueing")
    found = first(report, "queueing")
    assert number(found, "running_peak") == 4 == number(found, "max_num_seqs")
    assert number(found, "waiting_share_of_window") >= 0.5
    assert number(found, "mean_queue_seconds") > 0.2  # a quarter of the 0.8 s TTFT target
    assert [f["id"] for f in serious(report)][:2] == ["queueing", "ttft_high"]
    # 12 workers against 4 slots: 4 running + 8 waiting at the peak, and the cache has room: 16 slots.
    assert found["action"]["flag"] == "--max-num-seqs" and found["action"]["value"] == "16"


def test_kv_cache_pressure(stack: Stack) -> None:
    # 40 blocks of 16 tokens: four answers of ~500 tokens cannot all stay in the cache, so vLLM preempts.
    stack.start_engine("--warmup-requests", "0", "--num-gpu-blocks-override", "40")
    stack.load_for(WINDOW_S + SETTLE_S, workers=4)
    _, report = stack.doctor("kv_cache_pressure")
    found = first(report, "kv_cache_pressure")
    # Preemptions free blocks at once, so a 1 s scrape rarely sees the cache at 100%; the preemptions are the proof.
    assert number(found, "preemptions") > 0 and number(found, "kv_cache_usage_max") > 0.5
    assert found["action"]["flag"] == "--max-num-seqs" and found["action"]["value"] == "2"


def test_cold_start_absorbed_by_the_gateways_warm_up_is_only_info(stack: Stack) -> None:
    # A cold engine again, and a gateway that warms it up before it counts as ready (`--warmup 3`).
    stack.start_engine("--warmup-requests", "3", "--warmup-penalty-ms", "3000")
    stack.start_gateway("--warmup", "3")  # ready only once its 3 warm-up generations are done
    stack.load_for(6)
    _, report = stack.doctor("cold_start_absorbed", "30s")
    found = next((f for f in report["findings"] if f["id"] == "cold_start"), None)
    assert found is not None, json.dumps(report, indent=1)
    assert found["severity"] == "info", found
    assert number(found, "first_requests_mean_ttft_seconds") >= 1.0
    assert number(found, "user_ttft_p99_since_start_seconds") <= 0.8


def test_gpu_memory_with_llamacpp_as_the_engine(stack: Stack) -> None:
    """llama.cpp (its real /metrics capture) in the engine's place, no vllm:cache_config_info: judged on the bytes it
    uses against the 3 GB budget. 4.4 GB (an f16 model) is a warning naming the Q4 GGUF and the gpu-q4 profile."""
    stack.stop("sim")
    exposition = METRICS_CAPTURE.read_bytes()

    class LlamaMetrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path in ("/metrics", "/health") else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(exposition)))
            self.end_headers()
            self.wfile.write(exposition)

        def log_message(self, *args: object) -> None:
            pass

    def framebuffer(used_gb: float) -> None:
        used = round(used_gb * 1e9 / 1048576)
        stack.dcgm.set(DCGM_FI_DEV_FB_USED=used, DCGM_FI_DEV_FB_FREE=CARD_MIB - used)
        stack.both_see(f"DCGM_FI_DEV_FB_USED == {used}", f"{used_gb} GB in use")

    with serving(ThreadingHTTPServer(("127.0.0.1", stack.ports.engine), LlamaMetrics)):
        stack.both_see('count(llamacpp:requests_processing{job="vllm"}) unless count(vllm:cache_config_info)',
                       "llama.cpp in the engine's place")  # fmt: skip
        # The simulator's last samples out of the doctor's window: else the scenario run just before this one (on this
        # worker) still counts, e.g. prompt_too_long's long prompts.
        left = f"absent_over_time(vllm:request_prompt_tokens_count[{WINDOW}])"
        stack.both_see(left, "no simulator sample in the window")
        try:
            framebuffer(4.4)
            _, report = stack.doctor("gpu_memory_llamacpp")
            found = first(report, "gpu_memory")
            assert number(found, "fb_used_bytes") == pytest.approx(4.4e9, rel=1e-3)
            assert number(found, "budget_bytes") == 3e9 and number(found, "llamacpp_engines") == 1
            assert found["title"].startswith("llama.cpp uses 4.40 GB of GPU memory")
            assert found["action"]["flag"] == "LLAMA_MODEL_FILE" and "gpu-q4" in found["action"]["why"]
            framebuffer(2.16)  # what the gpu-q4 profile used on the lent H200 (docs/edge.md): within the budget
            _, report = stack.doctor("gpu_memory_llamacpp_within_budget")
            assert "gpu_memory" in report["checked"] and serious(report) == [], json.dumps(report, indent=1)
        finally:
            normal = round(CARD_MIB * 0.9)
            stack.dcgm.set(DCGM_FI_DEV_FB_USED=normal, DCGM_FI_DEV_FB_FREE=CARD_MIB - normal)
    stack.start_engine("--warmup-requests", "0")  # the simulator back in the engine's place
    stack.both_see('up{job="vllm"} == 1 and on () count(vllm:cache_config_info)', "the simulator scraped again")


def test_target_down(stack: Stack) -> None:
    stack.dcgm_server.close()  # the GPU exporter stops answering
    stack.both_see('up{job="dcgm"} == 0', "dcgm-exporter down")
    code, report = stack.doctor("target_down")
    found = first(report, "target_down")
    assert found["severity"] == "critical" and code == 1
    assert [e["name"] for e in found["evidence"]] == [f"up{{job=dcgm,instance=127.0.0.1:{stack.dcgm_port}}}"]
