"""`llmwatch demo` (`make demo`) end to end: it starts the stack on the ports it is given, sends its burst, prints
the KPIs and where to look, keeps Prometheus serving the project's rule groups, and on Ctrl-C (SIGINT) stops every
process it started and exits 0.

The SIGINT goes to the demo process only, not to its process group as a terminal's Ctrl-C would: so the children
are stopped by the demo's own shutdown, which is what this test is for (a terminal also signals them directly).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml

from llmwatch.demo.localstack import Ports
from llmwatch.render import engine_sizing
from tests.support import REPO, free_port, llmwatch_cmd, wait_until

pytestmark = pytest.mark.integration
SCHEMA = json.loads((REPO / "services/llmwatch/gateway/access-log.schema.json").read_text())
REQUESTS = 12
# Every port of llmwatch.demo.localstack.Ports gets a free one: none is left at its default, so a developer's running
# stack on 4000/8000/9090... neither clashes with the test nor answers in its place.
PORT_NAMES = tuple(Ports.model_fields)
STARTED = ("engine", "gateway", "relay", "prometheus", "alertmanager")  # the demo runs no node-exporter


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc/<pid>/task/<tid>/children (Linux)."""
    found: set[int] = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in map(int, children.read_text().split()):
                found |= {child, *descendants(child)}
    return found


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie has exited and waits only to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def demo_process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The demo in its own session; whatever of that session is left at the end is killed, even on failure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMWATCH_")}  # no IM of the developer's
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
            env={**env, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # only this session: the demo and what it started
            proc.wait(10)


def test_demo_serves_the_stack_prints_kpis_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    ports = {name: free_port() for name in PORT_NAMES}
    run_dir = tmp_path / "run"
    log = tmp_path / "demo.out"
    args = llmwatch_cmd("demo", "--keep-running", "--requests", str(REQUESTS), "--run-dir", str(run_dir),
                        "--repo", str(REPO), "--ports", json.dumps(ports))  # fmt: skip
    prometheus = f"http://127.0.0.1:{ports['prometheus']}"
    expected_groups = {g["name"] for p in (REPO / "prometheus/rules").glob("*.yml") for g in yaml.safe_load(
        p.read_text())["groups"]}  # fmt: skip
    expected_groups |= {g["name"] for g in yaml.safe_load(engine_sizing.render(REPO))["groups"]}

    def output() -> str:
        return log.read_text(errors="replace")

    with demo_process(args, log) as proc:

        def up() -> bool:
            assert proc.poll() is None, f"the demo exited with {proc.returncode}:\n{output()}"
            return "The stack is up" in output()

        wait_until(up, 120, "the demo to report that the stack is up", interval=0.2)
        children = descendants(proc.pid)
        assert len(children) >= len(STARTED), children
        for name in STARTED:
            assert listening(ports[name]), f"nothing listens on the {name} port {ports[name]}"

        def rule_groups() -> set[str]:
            groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=2).json()["data"]["groups"]
            return {g["name"] for g in groups} if {g["name"] for g in groups} >= expected_groups else set()

        assert wait_until(rule_groups, 20, "Prometheus to load the rule groups") == expected_groups

        def scraped() -> set[str]:
            targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
            up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
            return up if {"gateway", "vllm"} <= up else set()

        wait_until(scraped, 30, "Prometheus to scrape the gateway and the engine on the demo's ports")
        proc.send_signal(signal.SIGINT)
        returncode = proc.wait(30)
        text = output()
        leftovers = sorted(pid for pid in children if alive(pid))

    assert returncode == 0, text
    assert not leftovers, f"processes the demo started are still running: {leftovers}"
    assert not [name for name in STARTED if listening(ports[name])], "a port of the demo still answers"
    assert "stopping ..." in text and "stopped: every process of the demo has exited." in text

    assert "KPIs from the access log:" in text
    # The demo ends with `llmwatch doctor` over its burst: it evaluated the path against the demo's Prometheus.
    assert f"llmwatch doctor: http://127.0.0.1:{ports['prometheus']}, last 2m" in text, text
    assert re.search(r"^checked: target_down, cold_start, .*ttft_high$", text, re.M), text
    assert re.search(rf"^\s+requests\s+{REQUESTS}$", text, re.M), text
    for row in ("success", "5xx", "empty responses", "latency p50 / p99 (chat)", "TTFT p50 / p99 (chat, streamed)",
                "output tokens/s (aggregate)", "decode tokens/s per stream (p50)"):  # fmt: skip
        assert re.search(rf"^\s+{re.escape(row)}\s+\S", text, re.M), f"KPI row {row!r} missing:\n{text}"
    for name in STARTED:
        assert f"http://127.0.0.1:{ports[name]}" in text, f"the {name} URL is not printed:\n{text}"

    lines = [json.loads(line) for line in (run_dir / "access.log").read_text().splitlines() if line.strip()]
    assert len(lines) == REQUESTS
    for line in lines:
        jsonschema.validate(line, SCHEMA)
    # Agent traffic: tool-call answers, streamed and not, are answers; none is empty, so none feeds the doctor's
    # empty-response finding.
    tools = [line for line in lines if line["tools_offered"]]
    assert {line["stream"] for line in tools} == {True, False}, tools
    assert all(line["answer_kind"] == "tool_calls" and not line["empty_response"] for line in tools), tools
    assert re.search(rf"^\s+tool-call answers\s+{len(tools)}$", text, re.M), text
    other_empties = any(line["empty_response"] for line in lines if not line["tools_offered"])
    assert other_empties or not re.search(r"^(CRITICAL|WARNING)\s+empty_responses:", text, re.M), text
