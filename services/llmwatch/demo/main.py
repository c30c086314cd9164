"""`llmwatch demo` (`make demo`): simulator + gateway + Prometheus + Alertmanager on 127.0.0.1, a burst of traffic,
then where to look and the KPIs. Ctrl-C stops everything.

The demo is a list of steps; `llmwatch doctor` ends it. While the demo runs, `make load` load-tests its gateway
(docs/loadtest.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from llmwatch.config import parse_cli, settings_config
from llmwatch.demo.kpis import Kpis, read_lines
from llmwatch.demo.localstack import (
    LocalStack,
    Ports,
    binary,
    llmwatch,
    local_alertmanager_config,
    local_prometheus_config,
    write_yaml,
)
from llmwatch.demo.traffic import burst
from llmwatch.doctor.main import main as doctor_main
from llmwatch.prom import Prometheus, QueryError, Unreachable
from llmwatch.render import engine_sizing
from llmwatch.vllm.model import SERVE_FLAGS


class DemoSettings(BaseSettings):
    model_config = settings_config("LLMWATCH_DEMO_", "llmwatch demo")

    repo: Path = Field(Path("."), description="The llmwatch checkout (its prometheus/ and alertmanager/ are used).")
    run_dir: Path = Field(Path("run/demo"), description="Where logs and Prometheus/Alertmanager data go.")
    gpu_profile: str = Field("rtx3060", description="Simulated GPU: rtx3060, rtx4090 or h100.")
    max_num_seqs: int = Field(
        4,
        description="The engine's batch size (vLLM --max-num-seqs): an RTX 3060 at 4, below compose's 32, so the "
        "demo shows queueing and the doctor's advice.",
    )
    requests: int = Field(40, description="Requests in the traffic burst.")
    concurrency: int = Field(8, description="Requests in flight during the burst.")
    keep_running: bool = Field(True, description="After the summary, keep the stack up until Ctrl-C.")
    ports: Ports = Field(default_factory=Ports)


@dataclass
class Demo:
    settings: DemoSettings
    stack: LocalStack
    notes: list[str] = field(default_factory=list)
    traffic_span_s: float | None = None

    @property
    def access_log(self) -> Path:
        return self.settings.run_dir / "access.log"


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def start_engine(demo: Demo) -> None:
    s, p = demo.settings, demo.settings.ports
    demo.stack.start("sim", llmwatch(
        "sim", "--host", "127.0.0.1", "--port", str(p.engine), "--gpu-profile", s.gpu_profile,
        "--max-num-seqs", str(s.max_num_seqs), *SERVE_FLAGS, "--enable-admin",
    ), f"http://127.0.0.1:{p.engine}/health", timeout=60)  # fmt: skip
    demo.notes.append(f"engine (simulator)  http://127.0.0.1:{p.engine}/v1   faults: POST /admin/faults")


def start_gateway(demo: Demo) -> None:
    p = demo.settings.ports
    demo.stack.start("gateway", llmwatch(
        "gateway", "--upstream", f"http://127.0.0.1:{p.engine}", "--host", "127.0.0.1", "--port", str(p.gateway),
        "--log-file", str(demo.access_log.resolve()), "--no-log-stdout",
    ), f"http://127.0.0.1:{p.gateway}/readyz")  # fmt: skip
    demo.notes.append(f"gateway (OpenAI API) http://127.0.0.1:{p.gateway}/v1   metrics: /metrics")


def start_relay(demo: Demo) -> None:
    p = demo.settings.ports
    # No IM is configured locally: the relay's log target writes each message to run/demo/relay.log instead.
    # LLMWATCH_RELAY_* in the environment (DingTalk/WeCom/Feishu URLs) are honoured, so a real group can be tried.
    demo.stack.start("relay", llmwatch(
        "relay", "--host", "127.0.0.1", "--port", str(p.relay), "--log-target",
    ), f"http://127.0.0.1:{p.relay}/healthz")  # fmt: skip
    demo.notes.append(f"relay (alerts -> IM) http://127.0.0.1:{p.relay}   messages: {demo.settings.run_dir}/relay.log")


def start_alertmanager(demo: Demo) -> None:
    p, run = demo.settings.ports, demo.settings.run_dir.resolve()
    config = run / "alertmanager.yml"
    config.write_text(local_alertmanager_config(demo.settings.repo.resolve(), p))
    demo.stack.start("alertmanager", [
        binary("prometheus-alertmanager"), f"--config.file={config}", f"--storage.path={run / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{p.alertmanager}", "--cluster.listen-address=",
    ], f"http://127.0.0.1:{p.alertmanager}/-/ready")  # fmt: skip
    demo.notes.append(f"Alertmanager        http://127.0.0.1:{p.alertmanager}")


def start_prometheus(demo: Demo) -> None:
    p, run = demo.settings.ports, demo.settings.run_dir.resolve()
    repo = demo.settings.repo.resolve()
    sizing = engine_sizing.write(repo, run / "rendered", {"VLLM_MAX_NUM_SEQS": str(demo.settings.max_num_seqs)})
    config = local_prometheus_config(repo, p, set(demo.stack.procs) | {"engine"}, "5s", sizing)
    path = write_yaml(run / "prometheus.yml", config)
    demo.stack.start("prometheus", [
        binary("prometheus"), f"--config.file={path}", f"--storage.tsdb.path={run / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{p.prometheus}", "--enable-feature=exemplar-storage",
    ], f"http://127.0.0.1:{p.prometheus}/-/ready")  # fmt: skip
    demo.notes.append(f"Prometheus          http://127.0.0.1:{p.prometheus}   (rules: prometheus/rules/*.yml, 5 s)")
    # The gateway's request series start at zero: once Prometheus holds that zero, increase() sees the whole burst.
    # A burst that ends before the first scrape would be born at its total, and the doctor would count 0 requests.
    wait_for_result(f"http://127.0.0.1:{p.prometheus}", 'count(llmwatch_requests_total{job="gateway"})')


def wait_for_result(prometheus: str, query: str, seconds: float = 30) -> None:
    """Until ``query`` has a result in ``prometheus``, for at most ``seconds`` (the demo goes on either way)."""
    prom = Prometheus(prometheus, timeout=2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Unreachable, QueryError):
            if prom.query(query):
                return
        time.sleep(0.5)


def send_traffic(demo: Demo) -> None:
    s = demo.settings
    say(f"      {s.requests} requests, {s.concurrency} at a time (chat streams, non-streamed, Open WebUI tasks) ...")
    started = time.monotonic()
    statuses = asyncio.run(burst(f"http://127.0.0.1:{s.ports.gateway}", s.requests, s.concurrency))
    demo.traffic_span_s = time.monotonic() - started
    ok = sum(1 for code in statuses if code < 400)
    say(f"      done in {demo.traffic_span_s:.1f} s: {ok}/{len(statuses)} succeeded")


def summarize(demo: Demo) -> None:
    deadline = time.monotonic() + 5
    lines = read_lines(demo.access_log)
    while len(lines) < demo.settings.requests and time.monotonic() < deadline:
        time.sleep(0.1)
        lines = read_lines(demo.access_log)
    say("\nKPIs from the access log:")
    say(Kpis.of(lines, demo.traffic_span_s).table())
    say("\nWhere to look:")
    for note in demo.notes:
        say(f"  {note}")
    say(f"  access log          {demo.access_log}   live: tail -f {demo.access_log}")
    say(f"  process logs        {demo.settings.run_dir}/*.log")
    say("  try in Prometheus   sum by (kind) (rate(llmwatch_requests_total[1m]))")
    say("                      " + P99_QUERY)
    say(f"  make it misbehave   curl -X POST http://127.0.0.1:{demo.settings.ports.engine}/admin/faults "
        "-d '{\"error_rate\": 0.2}'")  # fmt: skip


def run_doctor(demo: Demo) -> None:
    """`llmwatch doctor` over the burst, once Prometheus has scraped all of it (and evaluated the thresholds)."""
    url = f"http://127.0.0.1:{demo.settings.ports.prometheus}"
    # Two scrapes of every request series at least: the doctor's increase() over its window needs both ends, and a
    # short burst can finish before Prometheus's first scrape of the gateway.
    scraped = (
        f"sum(llmwatch_requests_total) >= {demo.settings.requests}"
        " and on () min(count_over_time(llmwatch_requests_total[2m])) >= 2 and on () threshold:gpus_expected:min"
    )
    wait_for_result(url, scraped)
    say(f"      llmwatch doctor --prometheus {url} --window 2m")
    doctor_main(["--prometheus", url, "--window", "2m"])


P99_QUERY = "histogram_quantile(0.99, sum by (le) (rate(llmwatch_request_duration_seconds_bucket[5m])))"

STEPS: list[tuple[str, Callable[[Demo], None]]] = [
    ("simulator", start_engine),
    ("gateway", start_gateway),
    ("relay", start_relay),
    ("Alertmanager", start_alertmanager),
    ("Prometheus", start_prometheus),
    ("traffic", send_traffic),
    ("summary", summarize),
    ("doctor", run_doctor),
]


def main(argv: list[str]) -> int:
    settings = parse_cli(DemoSettings, argv)
    logging.basicConfig(level=logging.WARNING)
    demo = Demo(settings, LocalStack(settings.run_dir.resolve()))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C stops the demo even where it was started with SIGINT ignored (a shell's background job, a CI step).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for number, (name, step) in enumerate(STEPS, 1):
            say(f"[{number}/{len(STEPS)}] {name}")
            step(demo)
        if settings.keep_running:
            say("\nThe stack is up. Ctrl-C stops it.")
            stop.wait()
    except KeyboardInterrupt:
        say("\nstopping ...")
    except RuntimeError as exc:
        say(f"\ndemo failed: {exc}")
        return 1
    finally:
        demo.stack.stop()
        say("stopped: every process of the demo has exited.")
    return 0
