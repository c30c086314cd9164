"""`python -m bench.gpu_check` end to end with `llmwatch sim` standing in for vLLM (small counts, numbers meaningless).

The check's own steps are what a GPU run does: compose's engine flags, the gateway as compose runs it, correctness
through the openai SDK, the alternated sweep, the Locust gate, the /metrics captures, one report, everything stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, http_ok

pytestmark = pytest.mark.integration

CHECKS = {
    "usage, not streamed", "reasoning split, not streamed", "usage and TTFT, streamed", "reasoning split, streamed",
    "context_length, not streamed", "context_length, streamed", "model_not_found, not streamed",
    "model_not_found, streamed",
}  # fmt: skip


@pytest.fixture(scope="module")
def check_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("gpu-check")
    args = [
        sys.executable, "-m", "bench.gpu_check", "--engine", "sim", "--out", str(out),
        "--set", "SIM_GPU_PROFILE=h100", "--set", "VLLM_MAX_NUM_SEQS=8",
        "--engine-args", "--startup-seconds 0 --speed 4", "--streams", "1,4", "--min-requests", "4",
        "--requests-per-stream", "1", "--max-tokens", "16", "--gate-seconds", "8", "--gate-users", "8",
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=REPO)
    return done, out


def test_runs_every_step_and_passes_every_check(check_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, out = check_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data: dict[str, Any] = json.loads((out / "gpu-check.json").read_text())
    steps = [s["step"] for s in data["steps"]]
    assert steps == [
        "model folder and engine command", "engine start (to /health)", "gateway start, warm-up (to /readyz)",
        "engine /metrics, idle", "correctness (openai SDK)", "KPI sweep at 1,4 streams",
        "load-test gate at 4 req/s", "engine /metrics, after load", "stop gateway and engine",
    ]  # fmt: skip
    assert all(s["ok"] and s["seconds"] is not None for s in data["steps"]), data["steps"]
    assert {c["check"] for c in data["checks"]} == CHECKS and all(c["ok"] for c in data["checks"]), data["checks"]
    # compose's flags, with --set standing in for .env
    command = data["facts"]["engine_command"]
    assert "--max-num-seqs 8" in command and "--reasoning-parser deepseek_r1" in command and "--speed 4" in command
    assert data["facts"]["reasoning_only"] is True


def test_sweep_alternates_cells_with_fixed_length_answers(
    check_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = check_run
    data = json.loads((out / "gpu-check.json").read_text())
    assert [row["streams"] for row in data["sweep"]] == [1, 4]
    for row in data["sweep"]:
        assert len(row["direct"]) == 2 and len(row["gateway"]) == 2
        for cell in row["direct"] + row["gateway"]:
            assert cell["requests"] == row["requests_per_cell"] == 4
            assert cell["completion_tokens"] == 16, cell
            assert 0 < cell["ttft_ms_p50"] <= cell["ttft_ms_p99"] and cell["itl_ms_p50"] is not None
            assert 0 <= cell["engine_front_cpu_share"] <= (os.cpu_count() or 1), cell
    # The simulator is one process, front and engine: it worked (cells of 30 ms can fall between /proc's 10 ms ticks).
    assert sum(c["engine_front_cpu_share"] for row in data["sweep"] for c in row["direct"] + row["gateway"]) > 0
    report = (out / "REPORT.md").read_text()
    assert "| 4 | gateway | 8 |" in report and "direct drift" in report and "| engine front CPU |" in report
    assert "random weights, exact architecture" in report and "reasoning only" in report


def test_gate_report_metrics_and_nothing_left_running(
    check_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = check_run
    data = json.loads((out / "gpu-check.json").read_text())
    gate = data["gate"]
    assert gate["summary"]["requests"]["measured"] > 0 and gate["exit_code"] in (0, 1)
    assert (out / "loadtest" / "report.html").stat().st_size > 1000
    assert gate["gpu_memory_row"]["measured_text"] == "not measured (no NVIDIA GPU)"
    for name in ("metrics-idle.txt", "metrics-after-load.txt"):
        assert "vllm:num_requests_running" in (out / name).read_text()
    after = (out / "metrics-after-load.txt").read_text()
    assert 'vllm:request_success_total{engine="0",finished_reason="length"' in after
    # One access-log line per request through the gateway: 2 warm-up, 7 correctness (one more went to the engine
    # directly), 2 gateway cells of 4 requests per concurrency, and at least the gate's measured requests.
    lines = [json.loads(line) for line in (out / "access.log").read_text().splitlines()]
    chats = [line for line in lines if line["path"] == "/v1/chat/completions"]
    assert len(chats) >= 2 + 7 + 2 * (4 + 4) + gate["summary"]["requests"]["measured"]
    command = data["facts"]["engine_command"].split()
    port = command[command.index("--port") + 1]
    assert not http_ok(f"http://127.0.0.1:{port}/health"), "the engine still answers after the check"


def test_the_llamacpp_mode_runs_the_gpu_q4_command_on_the_llama_server_built_here(tmp_path: Path) -> None:
    """`--engine llamacpp` (the gpu-q4 measurement) on the CPU build and the tiny GGUF: `--n-gpu-layers all` parses,
    every check that applies to llama.cpp passes, and model_not_found is reported as not checked."""
    from tests.support.llamacpp import llama_binary, tiny_model

    out = tmp_path / "llama"
    args = [
        sys.executable, "-m", "bench.gpu_check", "--engine", "llamacpp", "--gguf", str(tiny_model()),
        "--llama-server", str(llama_binary("llama-server")), "--out", str(out), "--streams", "1",
        "--min-requests", "2", "--max-tokens", "8", "--skip", "gate", "--gateway-baseline", str(REPO / "services"),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((out / "gpu-check.json").read_text())
    assert data["facts"]["engine_command"].split()[1:3] == ["--n-gpu-layers", "all"]
    assert {c["check"] for c in data["checks"]} == {c for c in CHECKS if not c.startswith("model_not_found")}
    assert all(c["ok"] for c in data["checks"]) and "model_not_found" in data["facts"]["not_checked"]
    assert "build 11312" in data["facts"]["engine_version"]
    # --gateway-baseline: a second gateway in the same alternation, both with their CPU per forwarded event
    (row,) = data["sweep"]
    assert [len(row[p]) for p in ("direct", "gateway", "baseline")] == [2, 2, 2]
    # (a few requests take less CPU than /proc's 10 ms ticks show: the value is there, its size is the GPU's to tell)
    assert all(cell["proxy_cpu_us_per_event"] >= 0 for p in ("gateway", "baseline") for cell in row[p])
    assert "| 1 | baseline |" in (out / "REPORT.md").read_text()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--vllm", "no-such-vllm-command"], "--vllm"),
        (["--engine", "llamacpp"], "--gguf"),
        (["--engine", "sim", "--set", "NOEQUALS"], "--set"),
        (["--engine", "sim", "--skip", "everything"], "--skip"),
        (["--engine", "sim", "--gateway-baseline", "/nonexistent"], "--gateway-baseline"),
    ],
)
def test_bad_flags_are_one_error_naming_the_flag_and_exit_2(tmp_path: Path, flags: list[str], named: str) -> None:
    args = [sys.executable, "-m", "bench.gpu_check", "--out", str(tmp_path / "out"), *flags]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2 and named in done.stderr.splitlines()[-1], done.stderr
    assert not (tmp_path / "out").exists(), "nothing is started or written before the flags are checked"
