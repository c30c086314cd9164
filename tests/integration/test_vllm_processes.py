"""vLLM's API servers' CPU as the stack reads it when --api-server-count splits vLLM's front end.

vLLM then exports no process series, so compose's vllm-processes runs Debian's process-exporter (the binary the image
copies) with process-exporter/vllm.yml. Here that command runs word for word, as the image's non-root user, over
processes titled as vLLM 0.26.0 titles them (setproctitle, the library vLLM calls: VLLM::APIServer_<i>,
VLLM::EngineCore). A real Prometheus 2.42 scrapes it as prometheus.yml's job with the stack's alert rules, and both
EngineAPIServerCPUHigh and the doctor's engine_front_cpu must find the busy API server, and nothing else.

The threshold is lowered to 0.002 of a core (an operator's edit of thresholds.yml). The alert's 5-minute rate divides
what a few seconds of a test counted by the whole five minutes, and the busy process here takes a tenth of a core, so
as not to slow the rest of the suite; the idle API servers' CPU is 0 either way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmwatch.demo.localstack import LocalStack
from llmwatch.doctor.checks import queries
from llmwatch.doctor.checks.capacity import engine_front_cpu
from llmwatch.doctor.context import Context
from llmwatch.prom import Prometheus
from tests.support import REPO, free_port, need_binary, wait_until
from tests.support.promql import PROCESS_EXPORTER_CAPTURE, panels_of, process_exporter_names, series_names

pytestmark = pytest.mark.integration

THRESHOLD = 0.002  # cores
# This test's API servers, numbered after this test process (unique on the machine while it runs): other tests title
# processes too (test_bench_harness: APIServer_0 and _1), and here all share one process namespace, unlike vLLM's
# container. The last one is titled under an operator's own prefix.
BUSY, IDLE, PREFIXED = (f"APIServer_{os.getpid()}{n}" for n in range(3))
OURS = {BUSY, IDLE, PREFIXED}
IMAGE_USER = "10001"  # services/Dockerfile: USER 10001:10001
CONFIG = "process-exporter/vllm.yml"


# A busy API server computes for 5 ms of every 50 (a tenth of a core: the suite's other tests keep the rest, and the
# load test's timing needs it); an idle one sleeps.
WORK = "while True:\n    t = time.monotonic()\n    while time.monotonic() - t < 0.005: pass\n    time.sleep(0.045)"
SLEEP = "time.sleep(300)"


def titled(title: str, busy: bool, started: list[subprocess.Popen[bytes]]) -> None:
    """A process that titles itself as vLLM does, then works or sleeps; appended to ``started`` at once (so that it
    is stopped whatever happens next), and returned from once its title is in /proc, where process-exporter reads it."""
    code = f"import setproctitle, time\nsetproctitle.setproctitle({title!r})\n{WORK if busy else SLEEP}\n"
    proc = subprocess.Popen([sys.executable, "-c", code])
    started.append(proc)
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    wait_until(lambda: cmdline.read_bytes().startswith(title.encode()), 10, f"the title {title}")


def exporter_command(config: Path, port: int) -> list[str]:
    """compose's vllm-processes command, with this machine's binary, config path and port."""
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["vllm-processes"]
    words: list[str] = service["command"].split()
    assert words[0] == "prometheus-process-exporter" and words[1].startswith("-config.path=")
    assert words[-1] == "-web.listen-address=:9256"
    command = [need_binary(words[0]), f"-config.path={config}", *words[2:-1], f"-web.listen-address=127.0.0.1:{port}"]
    if os.geteuid() == 0:  # as the image runs it; a non-root developer runs it as themselves
        command = [need_binary("setpriv"), f"--reuid={IMAGE_USER}", f"--regid={IMAGE_USER}", "--clear-groups", *command]
    return command


def prometheus_config(exporter: str, thresholds: Path) -> dict[str, Any]:
    """prometheus.yml's vllm-processes job at ``exporter``, every second, with the alert rules and ``thresholds``."""
    source = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())
    [job] = [j for j in source["scrape_configs"] if j["job_name"] == "vllm-processes"]
    job = {**{k: v for k, v in job.items() if k != "dns_sd_configs"}, "static_configs": [{"targets": [exporter]}]}
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(REPO / "prometheus/rules/alerts.yml"), str(thresholds)],
        "scrape_configs": [job],
    }


def lowered_thresholds(path: Path) -> Path:
    rules = yaml.safe_load((REPO / "prometheus/rules/thresholds.yml").read_text())
    record = "threshold:engine_front_cpu_cores:max"
    [line] = [r for g in rules["groups"] for r in g["rules"] if r.get("record") == record]
    line["expr"] = f"vector({THRESHOLD})"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


@dataclass
class Stack:
    prom: Prometheus
    exporter: str  # its /metrics URL
    started: float  # when the titled processes started (epoch seconds)
    engine: list[int]  # the titled processes' ids


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("vllm-processes")
    # A folder the image's user can read (pytest's own is root's alone), holding the shipped config.
    readable = Path(tempfile.mkdtemp(prefix="llmwatch-process-exporter-"))
    readable.chmod(0o755)
    shutil.copy(REPO / CONFIG, readable / "vllm.yml")
    (readable / "vllm.yml").chmod(0o644)
    exporter_port, prom_port = free_port(), free_port()
    (tmp / "prometheus.yml").write_text(
        yaml.safe_dump(prometheus_config(f"127.0.0.1:{exporter_port}", lowered_thresholds(tmp / "thresholds.yml")))
    )
    started = time.time()
    engine: list[subprocess.Popen[bytes]] = []
    local = LocalStack(tmp)
    try:
        for title, busy in ((f"VLLM::{BUSY}", True), (f"VLLM::{IDLE}", False), ("VLLM::EngineCore", False),
                            (f"llm-a::{PREFIXED}", False)):  # fmt: skip
            titled(title, busy, engine)
        local.start("process-exporter", exporter_command(readable / "vllm.yml", exporter_port),
                    f"http://127.0.0.1:{exporter_port}/metrics", 20)  # fmt: skip
        local.start("prometheus", [
            need_binary("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
        ], f"http://127.0.0.1:{prom_port}/-/ready", 30)  # fmt: skip
        yield Stack(Prometheus(f"http://127.0.0.1:{prom_port}"), f"http://127.0.0.1:{exporter_port}/metrics", started,
                    [proc.pid for proc in engine])  # fmt: skip
    finally:
        local.stop()
        for proc in engine:
            proc.kill()
            proc.wait()
        shutil.rmtree(readable)


def test_one_group_per_api_server_and_none_for_the_engine_core(stack: Stack) -> None:
    prom = stack.prom
    counted = wait_until(lambda: prom.query("namedprocess_namegroup_num_procs"), 20, "process-exporter's groups")
    assert {s.labels["groupname"]: s.value for s in counted if s.labels["groupname"] in OURS} == dict.fromkeys(OURS, 1)
    assert all(s.labels["groupname"].startswith("APIServer_") for s in counted), "only API servers, no engine core"
    assert {s.labels["job"] for s in counted} == {"vllm-processes"}
    assert {s.labels["service"] for s in counted} == {"vllm-processes"}


def test_the_committed_capture_has_the_live_series(stack: Stack) -> None:
    """The dashboards' name check reads the capture (tests/unit/test_dashboards.py): it must be what the exporter
    serves, with its own process_* series (the exporter's, under job vllm-processes) among them."""
    live = series_names(httpx.get(stack.exporter, timeout=5).text)
    assert live == process_exporter_names(), PROCESS_EXPORTER_CAPTURE.name
    assert {"namedprocess_namegroup_cpu_seconds_total", "namedprocess_namegroup_oldest_start_time_seconds"} <= live


def test_the_alert_names_the_busy_api_server(stack: Stack) -> None:
    prom = stack.prom

    def pending() -> list[dict[str, Any]]:
        alerts = httpx.get(f"{prom.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "EngineAPIServerCPUHigh"
                and a["labels"]["groupname"] in OURS]  # fmt: skip

    [alert] = wait_until(pending, 90, "EngineAPIServerCPUHigh pending")  # a few seconds, unless the box is very busy
    assert alert["state"] == "pending", "15 minutes of `for:` have not passed"
    assert alert["labels"]["groupname"] == BUSY and alert["labels"]["job"] == "vllm-processes"
    summary = alert["annotations"]["summary"]
    assert summary.startswith(f"vLLM's API server {BUSY} on {alert['labels']['instance']} uses ")
    # The threshold comes through the template's own query (humanizePercentage writes 0.002 as 0.2%).
    assert summary.endswith("of a CPU core (threshold 0.2%)")


def test_the_doctor_finds_the_busiest_api_server_and_its_start(stack: Stack) -> None:
    prom = stack.prom
    wait_until(lambda: prom.value(queries.front_cpu('job="vllm"', "10s")), 20, "a rate of the API servers' CPU")
    found = engine_front_cpu(Context.load(prom, "10s"))
    assert found is not None and found.action is not None and found.action.flag == "--api-server-count"
    cores, line = found.evidence
    assert THRESHOLD < cores.value <= 0.3, "a process that computes a tenth of the time: about a tenth of a core"
    groups = f"namedprocess_namegroup_cpu_seconds_total{{{queries.API_SERVER_GROUPS}}}"
    per_server = f"sum by (groupname) (rate({groups}[10s]))"
    idle = {s.labels["groupname"]: s.value for s in prom.query(per_server)}[IDLE]
    assert idle < THRESHOLD < cores.value, "the busy server's share is the finding's"
    assert cores.query == queries.front_cpu('job="vllm"', "10s")
    assert line.value == THRESHOLD and line.source != "default", "the live threshold series, not the default"
    uptime = prom.value(queries.uptime('job="vllm"'))
    assert uptime is not None and 0 <= uptime <= time.time() - stack.started + 2


def test_the_dashboard_draws_one_line_per_api_server(stack: Stack) -> None:
    """The vLLM dashboard's queries of these series (tests/integration/test_alerting_live.py only parses them: its
    simulator has one process) have a line for each API server here."""
    board = json.loads((REPO / "grafana/dashboards/vllm-engine.json").read_text())
    exprs = [t["expr"] for p in panels_of(board) for t in p.get("targets", []) if "namedprocess_" in t.get("expr", "")]
    assert exprs
    for expr in exprs:
        concrete = expr.replace("$__rate_interval", "10s")

        def ours(q: str = concrete) -> set[str]:
            return {s.labels["groupname"] for s in stack.prom.query(q)} & OURS

        assert wait_until(lambda: ours() == OURS, 20, concrete)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the engine's processes must belong to another user")
def test_the_image_user_reads_what_it_needs_and_not_the_engines_environment(stack: Stack) -> None:
    """What the docs promise of vllm-processes: as the image's user it reads a root-owned engine process's stat and
    cmdline, not its environ (where HF_TOKEN lives) or memory; Linux asks ptrace rights for those two."""
    as_user = [need_binary("setpriv"), f"--reuid={IMAGE_USER}", f"--regid={IMAGE_USER}", "--clear-groups"]
    pid = stack.engine[0]
    for readable in ("stat", "cmdline"):
        assert subprocess.run([*as_user, "cat", f"/proc/{pid}/{readable}"], capture_output=True).returncode == 0
    for private in ("environ", "mem", "maps"):
        refused = subprocess.run([*as_user, "cat", f"/proc/{pid}/{private}"], capture_output=True, text=True)
        assert refused.returncode != 0 and "Permission denied" in refused.stderr, private
