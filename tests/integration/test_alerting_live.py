"""Live alerting on 127.0.0.1: traffic -> gateway -> Prometheus -> Alertmanager -> relay -> DingTalk, WeCom, Feishu.

Real processes: `llmwatch sim`, `llmwatch gateway`, `llmwatch relay`, and Debian's prometheus 2.42,
prometheus-alertmanager 0.25 and prometheus-node-exporter. Only the IM services are fakes (tests/fakes/im.py, which
answers in their wire format and refuses a bad signature). Prometheus and Alertmanager get the project's own configs,
rewritten for 127.0.0.1 by llmwatch.demo.localstack.

Time is compressed, not faked: the REAL rule files are copied with every range window divided by WINDOW_FACTOR and
every `for:` by FOR_FACTOR (`compress_rules`, tested below), so a 5-minute alert fires in seconds. Alertmanager's
route timings are shortened in the loaded config. The repo's files stay the only source of rules and routes.
"""

from __future__ import annotations

import contextlib
import copy
import glob
import hmac
import json
import math
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmwatch.demo.localstack import LocalStack, Ports, local_alertmanager_config, local_prometheus_config
from llmwatch.duration import PATTERN as _DURATION
from llmwatch.duration import duration, seconds
from llmwatch.prom import Prometheus
from llmwatch.render import engine_sizing
from llmwatch.vllm.model import SERVE_FLAGS
from tests.fakes.im import (
    DINGTALK_SECRET,
    FEISHU_SECRET,
    WECOM_KEY,
    FakeIM,
    Received,
    expected_dingtalk_sign,
    expected_feishu_sign,
    relay_env,
)
from tests.support import (
    REPO,
    NotReady,
    Traffic,
    free_port,
    llmwatch_cmd,
    need_binary,
    scrape,
    sim_cmd,
    total,
    wait_until,
)
from tests.support.promql import QUOTED, panels_of, promql_metric_names, variable_expr

# --- time compression of the real rule files ---------------------------------------------------------------------
WINDOW_FACTOR = 30  # [5m] -> [10s], [15m] -> [30s]
MIN_WINDOW_S = 5.0  # a rate needs samples: at least 5 scrapes of 1 s
FOR_FACTOR = 60  # for: 1m -> 1s, 5m -> 5s, 10m -> 10s
MIN_FOR_S = 1.0
SCRAPE_INTERVAL = "1s"
AM_TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1m"}

_RANGE = re.compile(rf"\[\s*(?P<range>{_DURATION})\s*(?::\s*(?P<step>(?:{_DURATION})?)\s*)?\]")
_OFFSET = re.compile(rf"\boffset(?P<space>\s+)(?P<sign>-?)(?P<offset>{_DURATION})")


def scale_expr(expr: str, factor: float, min_window_s: float) -> str:
    """Divide every range window, subquery step and offset of a PromQL expression by ``factor``; strings untouched."""

    def scale_range(m: re.Match[str]) -> str:
        window = duration(max(min_window_s, seconds(m["range"]) / factor))
        if m["step"] is None:
            return f"[{window}]"
        step = duration(seconds(m["step"]) / factor) if m["step"] else ""
        return f"[{window}:{step}]"

    def scale_offset(m: re.Match[str]) -> str:
        return f"offset{m['space']}{m['sign']}{duration(seconds(m['offset']) / factor)}"

    out, last = [], 0
    for string in QUOTED.finditer(expr):
        code = expr[last : string.start()]
        out += [_OFFSET.sub(scale_offset, _RANGE.sub(scale_range, code)), string.group(0)]
        last = string.end()
    out.append(_OFFSET.sub(scale_offset, _RANGE.sub(scale_range, expr[last:])))
    return "".join(out)


def compress_rules(doc: dict[str, Any], window_factor: float, for_factor: float) -> dict[str, Any]:
    """A copy of a rule file with every window / window_factor and every `for:` / for_factor; nothing else changes."""
    out = copy.deepcopy(doc)
    for group in out.get("groups", []):
        for rule in group.get("rules", []):
            rule["expr"] = scale_expr(str(rule["expr"]), window_factor, MIN_WINDOW_S)
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    rule[key] = duration(max(MIN_FOR_S, seconds(str(rule[key])) / for_factor))
    return out


def write_compressed_rules(patterns: list[str], dest: Path) -> list[Path]:
    """Every rule file the Prometheus config names, compressed into ``dest`` under its own name."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for pattern in patterns:
        for source in map(Path, sorted(glob.glob(pattern))):
            doc = compress_rules(yaml.safe_load(source.read_text()), WINDOW_FACTOR, FOR_FACTOR)
            target = dest / source.name
            target.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
            written.append(target)
    assert written, f"no rule files matched {patterns}"
    return written


def shorten_routes(route: dict[str, Any]) -> None:
    """Alertmanager route timings to AM_TIMINGS, on the root route and every child that sets its own."""
    for key, value in AM_TIMINGS.items():
        if key in route:
            route[key] = value
    for child in route.get("routes", []):
        shorten_routes(child)


RULE_FILES = sorted((REPO / "prometheus/rules").glob("*.yml"))


@pytest.mark.unit
def test_scale_expr_scales_windows_steps_and_offsets_but_not_strings() -> None:
    assert scale_expr("rate(x[5m])", 30, 5) == "rate(x[10s])"
    assert scale_expr("increase(x[15m]) offset 1h", 30, 5) == "increase(x[30s]) offset 120s"
    assert scale_expr("max_over_time(rate(x[5m])[15m:1m])", 30, 5) == "max_over_time(rate(x[10s])[30s:2s])"
    assert scale_expr("max_over_time(x[ 1h30m : ])", 30, 5) == "max_over_time(x[180s:])"
    assert scale_expr("rate(x[1m])", 30, 5) == "rate(x[5s])"  # the floor: a rate needs a few scrapes
    assert scale_expr('rate(x{path=~"/a[5m]", b=`[1h]`}[5m])', 30, 5) == 'rate(x{path=~"/a[5m]", b=`[1h]`}[10s])'
    assert scale_expr("vector(0.05) * 300", 30, 5) == "vector(0.05) * 300"


@pytest.mark.unit
@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name for p in RULE_FILES])
def test_compress_rules_changes_only_windows_and_for_of_the_real_files(path: Path) -> None:
    original = yaml.safe_load(path.read_text())
    compressed = compress_rules(original, WINDOW_FACTOR, FOR_FACTOR)
    rules = [rule for group in original["groups"] for rule in group["rules"]]
    if any("for" in rule or "[" in str(rule["expr"]) for rule in rules):
        assert compressed != original

    def masked(expr: str) -> str:
        expr = re.sub(rf"\boffset\s+-?{_DURATION}", "offset D", expr)
        return re.sub(rf"\[\s*{_DURATION}\s*(:\s*({_DURATION})?\s*)?\]", "[D]", expr)

    for group, small in zip(original["groups"], compressed["groups"], strict=True):
        assert small["name"] == group["name"]
        for rule, fast in zip(group["rules"], small["rules"], strict=True):
            assert set(fast) == set(rule)
            assert {k: v for k, v in fast.items() if k not in ("expr", "for")} == {
                k: v for k, v in rule.items() if k not in ("expr", "for")
            }
            assert masked(fast["expr"]) == masked(str(rule["expr"]))
            # Windows outside quoted strings: a label regex such as "APIServer_[0-9]+" holds brackets too.
            for window, small_window in zip(
                re.findall(rf"\[\s*({_DURATION})", QUOTED.sub('""', str(rule["expr"]))),
                re.findall(rf"\[\s*({_DURATION})", QUOTED.sub('""', fast["expr"])),
                strict=True,
            ):
                assert seconds(small_window) == max(MIN_WINDOW_S, seconds(window) / WINDOW_FACTOR)
            if "for" in rule:
                assert seconds(fast["for"]) == max(MIN_FOR_S, seconds(rule["for"]) / FOR_FACTOR)


@pytest.mark.integration
def test_compressed_rules_pass_promtool(tmp_path: Path) -> None:
    files = write_compressed_rules([str(REPO / "prometheus/rules/*.yml")], tmp_path)
    done = subprocess.run(
        [need_binary("promtool"), "check", "rules", *map(str, files)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recording.yml" in {f.name for f in files} and "alerts.yml" in {f.name for f in files}


# --- the stack ---------------------------------------------------------------------------------------------------
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
TARGETS = ("dingtalk", "wecom", "feishu")
TASK = "### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history."
# max_tokens 512: the simulator thinks for up to ~320 tokens and answers in up to ~160, so no answer is cut to empty
# (a smaller budget is spent on reasoning alone, and GatewayEmptyResponseRatioHigh would fire without a fault).
REQUESTS: list[dict[str, Any]] = [
    {"model": MODEL, "messages": [{"role": "user", "content": "What is 17 * 23?"}], "max_tokens": 512, "stream": True},
    {"model": MODEL, "messages": [{"role": "user", "content": "Name three primes."}], "max_tokens": 512},
    {"model": MODEL, "messages": [{"role": "user", "content": "用一句话解释GPU。"}], "max_tokens": 512, "stream": True},
    {"model": MODEL, "messages": [{"role": "user", "content": TASK}], "max_tokens": 512},
]


@dataclass
class Stack:
    ports: Ports
    fake: FakeIM
    out_dir: Path
    traffic: Traffic
    node_metric_names: set[str]
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{getattr(self.ports, service)}"

    def query(self, expr: str) -> dict[str, Any]:
        """Prometheus' answer to an instant query, errors included (status "error", errorType, error)."""
        return Prometheus(self.url("prometheus")).answer(expr)

    def alert_states(self, name: str) -> set[str]:
        alerts = httpx.get(f"{self.url('prometheus')}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return {a["state"] for a in alerts if a["labels"]["alertname"] == name}

    def set_faults(self, **faults: object) -> None:
        answer = httpx.post(f"{self.url('engine')}/admin/faults", json=faults, timeout=5)
        assert answer.status_code == 200, answer.text

    def relay_deliveries(self, outcome: str) -> float:
        return total(scrape(f"{self.url('relay')}/metrics"), "llmwatch_relay_deliveries_total", outcome=outcome)

    def record(self, alert: str, timings: dict[str, Any]) -> Path:
        self.timings[alert] = timings
        path = self.out_dir / "alert-latency.json"
        settings = {"window_factor": WINDOW_FACTOR, "for_factor": FOR_FACTOR, "scrape_interval": SCRAPE_INTERVAL,
                    "alertmanager": AM_TIMINGS, "sim_gpu_profile": "h100"}  # fmt: skip
        path.write_text(json.dumps({"settings": settings, "alerts": self.timings}, indent=2))
        return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("alerting-live")
    ports = Ports(**{name: free_port() for name in Ports.model_fields})
    url = {name: f"http://127.0.0.1:{port}" for name, port in vars(ports).items()}
    sizing = engine_sizing.write(REPO, tmp / "rendered", {"VLLM_MAX_NUM_SEQS": "16"})  # the sim's --max-num-seqs below
    prom_config = local_prometheus_config(REPO, ports, {"engine", "gateway", "relay", "alertmanager",
                                                        "node-exporter"}, SCRAPE_INTERVAL, sizing)  # fmt: skip
    prom_config["rule_files"] = [str(p) for p in write_compressed_rules(prom_config["rule_files"], tmp / "rules")]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(prom_config, sort_keys=False))
    am_config = yaml.safe_load(local_alertmanager_config(REPO, ports))
    shorten_routes(am_config["route"])
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(am_config, sort_keys=False))
    fake = FakeIM()
    local = LocalStack(tmp)
    with contextlib.ExitStack() as stop:
        im = stop.enter_context(fake.serve())
        stop.callback(local.stop)

        def start(args: list[str], name: str, ready: str, **kw: Any) -> None:
            local.start(name, args, ready, **kw)

        start(sim_cmd(
            ports.engine, "--gpu-profile", "h100", *SERVE_FLAGS, "--enable-admin",
            "--max-num-seqs", "16",
        ), "sim", f"{url['engine']}/health")  # fmt: skip
        start(llmwatch_cmd(
            "gateway", "--upstream", url["engine"], "--host", "127.0.0.1", "--port", str(ports.gateway),
            "--log-file", str(tmp / "access.log"), "--no-log-stdout", "--health-interval", "0.5",
            "--forward-header", "X-Sim-Fault",  # the forced upstream error below
        ), "gateway", f"{url['gateway']}/readyz")  # fmt: skip
        start(llmwatch_cmd("relay", "--host", "127.0.0.1", "--port", str(ports.relay)), "relay",
              f"{url['relay']}/healthz", env=relay_env(im, 0.2, 1))  # fmt: skip
        start([need_binary("prometheus-node-exporter"), "--no-collector.systemd",
               f"--web.listen-address=127.0.0.1:{ports.node_exporter}"], "node-exporter",
              f"{url['node_exporter']}/metrics")  # fmt: skip
        start([need_binary("prometheus-alertmanager"), f"--config.file={tmp / 'alertmanager.yml'}",
               f"--storage.path={tmp / 'alertmanager-data'}", f"--web.listen-address=127.0.0.1:{ports.alertmanager}",
               "--cluster.listen-address="], "alertmanager", f"{url['alertmanager']}/-/ready")  # fmt: skip
        start([need_binary("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
               f"--storage.tsdb.path={tmp / 'prometheus-data'}", f"--web.listen-address=127.0.0.1:{ports.prometheus}"],
              "prometheus", f"{url['prometheus']}/-/ready", timeout=30)  # fmt: skip
        node_names = {name for name, _ in scrape(f"{url['node_exporter']}/metrics")}
        traffic = stop.enter_context(Traffic(url["gateway"], REQUESTS).running())
        yield Stack(ports, fake, tmp, traffic, node_names)


# --- alerts reach every IM, signed, and resolve ------------------------------------------------------------------
def title_of(message: Received) -> str:
    """The message's title as the IM shows it (DingTalk markdown title, WeCom first line, Feishu card header)."""
    if message.target == "dingtalk":
        return str(message.body["markdown"]["title"])
    if message.target == "feishu":
        return str(message.body["card"]["header"]["title"]["content"])
    first_line = str(message.body["markdown"]["content"]).split("\n", 1)[0]
    return re.sub(r"<[^>]+>", "", first_line).lstrip("# ")


def assert_signed(message: Received) -> None:
    """Checked again here, independently of the fake's acceptance: the signature a real IM would verify."""
    now = time.time()
    if message.target == "dingtalk":
        stamp, sign = message.query["timestamp"], message.query["sign"]
        assert hmac.compare_digest(sign, expected_dingtalk_sign(DINGTALK_SECRET, stamp)), "DingTalk signature"
        assert abs(int(stamp) / 1000 - now) < 3600
    elif message.target == "feishu":
        stamp, sign = str(message.body["timestamp"]), str(message.body["sign"])
        assert hmac.compare_digest(sign, expected_feishu_sign(FEISHU_SECRET, stamp)), "Feishu signature"
        assert abs(int(stamp) - now) < 3600
    else:
        assert message.query["key"] == WECOM_KEY  # WeCom has no signature: the key in the URL is the secret


def wait_messages(stack: Stack, alert: str, status: str, timeout: float) -> dict[str, float]:
    """Monotonic time at which each IM first held a ``status`` message about ``alert``."""
    title = re.compile(rf"\] {status}(?::\d+)? {alert}\b")
    seen: dict[str, float] = {}

    def all_seen() -> bool:
        for target in TARGETS:
            hits = [m for m in stack.fake.delivered(target) if title.search(title_of(m))]
            if hits and target not in seen:
                seen[target] = time.monotonic()
                assert_signed(hits[0])
        return len(seen) == len(TARGETS)

    wait_until(all_seen, timeout, f"{status} {alert} at {', '.join(TARGETS)} (got {sorted(seen)})")
    return seen


def wait_quiet_baseline(stack: Stack, alert: str) -> None:
    """Traffic is visible in Prometheus, the ratio alerts' volume gate is open, and ``alert`` is not active.

    The gate is `rate * 300 >= threshold:gateway_ratio_min_requests_5m:min`: compression leaves the 300 alone, so it
    still reads "requests per 5 minutes at the current rate", and the test's traffic clears 10 without lowering it.
    """
    gate = "job:llmwatch_requests:rate5m * 300 >= scalar(threshold:gateway_ratio_min_requests_5m:min)"
    wait_until(lambda: stack.query(gate)["data"]["result"], 30, "enough gateway traffic for the ratio alerts")
    wait_until(lambda: not stack.alert_states(alert), 30, f"{alert} to be inactive before the fault")


def fault_to_im(stack: Stack, alert: str, fault: dict[str, object], clear: dict[str, object]) -> dict[str, Any]:
    """Inject ``fault``, wait for ``alert`` in Prometheus and at every IM, clear it, wait for the resolution."""
    wait_quiet_baseline(stack, alert)
    retries_before = stack.relay_deliveries("retry")
    start = time.monotonic()
    stack.set_faults(**fault)
    try:
        wait_until(lambda: "firing" in stack.alert_states(alert), 60, f"{alert} firing in Prometheus")
        firing = time.monotonic()
        delivered = wait_messages(stack, alert, "FIRING", 30)
    finally:
        stack.set_faults(**clear)
    cleared = time.monotonic()
    wait_until(lambda: not stack.alert_states(alert), 60, f"{alert} to resolve in Prometheus")
    inactive = time.monotonic()
    resolved = wait_messages(stack, alert, "RESOLVED", 30)
    assert stack.relay_deliveries("failure") == 0
    assert stack.relay_deliveries("retry") == retries_before, "an IM refused a message (signature?)"
    first = min(delivered, key=lambda t: delivered[t])
    return {
        "fault": fault,
        "fault_to_prometheus_firing_s": round(firing - start, 2),
        "fault_to_first_im_message_s": round(delivered[first] - start, 2),
        "first_im": first,
        "fault_to_im_message_s": {t: round(at - start, 2) for t, at in delivered.items()},
        "clear_to_prometheus_inactive_s": round(inactive - cleared, 2),
        "clear_to_resolved_im_message_s": {t: round(at - cleared, 2) for t, at in resolved.items()},
    }


def report(stack: Stack, alert: str, timings: dict[str, Any]) -> None:
    path = stack.record(alert, timings)
    print(f"\n{alert}: fault -> firing in Prometheus {timings['fault_to_prometheus_firing_s']} s, "
          f"-> first IM message {timings['fault_to_first_im_message_s']} s "
          f"({timings['first_im']}); per IM {timings['fault_to_im_message_s']}; resolved after clearing "
          f"{timings['clear_to_resolved_im_message_s']}; written to {path}")  # fmt: skip


@pytest.mark.integration
def test_5xx_alert_fires_reaches_every_im_signed_and_resolves(stack: Stack) -> None:
    alert = "GatewayErrorRatioHigh"
    timings = fault_to_im(stack, alert, {"error_rate": 0.5, "error_status": 500}, {"error_rate": 0.0})
    report(stack, alert, timings)
    assert stack.traffic.statuses[500] > 0, stack.traffic.statuses


@pytest.mark.integration
def test_empty_response_alert_fires_reaches_every_im_signed_and_resolves(stack: Stack) -> None:
    alert = "GatewayEmptyResponseRatioHigh"
    timings = fault_to_im(stack, alert, {"empty_rate": 0.5}, {"empty_rate": 0.0})
    report(stack, alert, timings)
    lines = [json.loads(x) for x in (stack.out_dir / "access.log").read_text().splitlines()]
    assert any(line["empty_response"] for line in lines)


# --- every dashboard query and recording rule parses, and has data where this stack can have it -------------------
DASHBOARDS = sorted((REPO / "grafana/dashboards").glob("*.json"))
# Grafana's built-in variables as the dashboards' default view (last 1 h, ~1,000 points, a 1 s scrape) resolves them:
# $__interval rounds 3.6 s to 5 s, and $__rate_interval = max($__interval + scrape interval, 4 * scrape interval).
BUILTINS = {"__rate_interval": "6s", "__interval": "5s", "__range": "1h"}
# Series only dcgm-exporter (a GPU) produces: none here, so expressions reading nothing else must only parse.
GPU_SERIES = re.compile(r"^(DCGM_|gpu:|gpu_class:)")
# Series only a llama.cpp engine gives, and the recording rules made from them.
LLAMACPP_SERIES = re.compile(r"^(llamacpp:|stack:llamacpp_)")
# Series only vllm-processes gives, beside a vLLM with several API servers (the simulator has one process):
# tests/integration/test_vllm_processes.py runs the real process-exporter and checks these queries have data.
API_SERVER_SERIES = re.compile(r"^namedprocess_")
# Hardware sensors that VMs and containers often lack: an expression reading one may be empty ONLY when this host's
# node-exporter exposes no series of that name (checked against a live scrape, not assumed).
HOST_SENSORS = {
    "node_cpu_scaling_frequency_hertz",
    "node_cpu_scaling_frequency_max_hertz",
    "node_thermal_zone_temp",
    "node_hwmon_temp_celsius",
}


def substitute(expr: str, variables: dict[str, str]) -> str:
    def value(m: re.Match[str]) -> str:
        name = m["a"] or m["b"] or m["c"]
        assert name in variables, f"unknown Grafana variable ${name} in {expr!r}"
        return variables[name]

    return re.sub(r"\$\{(?P<a>\w+)(?::\w+)?\}|\$(?P<b>\w+)|\[\[(?P<c>\w+)\]\]", value, expr)


def dashboard_queries() -> dict[str, str]:
    """{where: PromQL} for every Prometheus target and query variable, variables set to All (their allValue)."""
    out: dict[str, str] = {}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        templating = board.get("templating", {}).get("list", [])
        variables = dict(BUILTINS)
        for var in templating:
            if var["type"] in ("textbox", "constant"):  # e.g. $kibana, a link target: never in a query
                continue
            assert var.get("includeAll") and var.get("allValue"), f"{path.name} ${var['name']}: no All value"
            variables[var["name"]] = var["allValue"]
        for var in templating:
            if var["type"] == "query":
                query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                expr = variable_expr(query)
                assert expr, f"{path.name} ${var['name']}: no PromQL in variable query {query!r}"
                out[f"{path.name} variable ${var['name']}"] = substitute(expr, variables)
        for panel in panels_of(board):
            for target in panel.get("targets", []):
                source = (target.get("datasource") or panel.get("datasource") or {}).get("type", "prometheus")
                if source == "elasticsearch":  # the access-log panel: Lucene, checked by the logs tests
                    continue
                assert target.get("expr"), f"{path.name} {panel.get('title')!r}: a {source} target without expr"
                where = f"{path.name} panel {panel.get('id')} {panel.get('title')!r} {target.get('refId', '')}"
                assert where not in out, f"two targets called {where}"
                out[where] = substitute(target["expr"], variables)
    return out


def recording_rules() -> dict[str, str]:
    """{where: PromQL} for every recording rule of the real files: its expression and the series it records."""
    out: dict[str, str] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    out[f"{path.name} {rule['record']} expr"] = str(rule["expr"])
                    out[f"{path.name} {rule['record']} recorded"] = rule["record"]
    return out


def has_data(answer: dict[str, Any]) -> bool:
    """At least one number that is not NaN: what a panel can draw."""
    data = answer["data"]
    if data["resultType"] == "scalar":
        return not math.isnan(float(data["result"][1]))
    return any(not math.isnan(float(s["value"][1])) for s in data["result"])


def needs_data(expr: str, node_names: set[str]) -> bool:
    names = promql_metric_names(expr)
    if names and all(GPU_SERIES.match(name) for name in names):
        return False  # no GPU here
    if names and all(API_SERVER_SERIES.match(name) for name in names):
        return False  # no vLLM with several API servers here
    # This stack runs the simulator, not llama.cpp (tests/integration/test_llamacpp.py): a series only llama.cpp
    # gives, or one recorded from it, is empty here, and so is what is joined to it (`and on ()`), but not what
    # merely excludes it (`unless on () llama.cpp`).
    kept = re.sub(r"\bunless\s+(?:on\s*\([^)]*\)\s*)?stack:llamacpp_[\w:]+", "", expr)
    if any(LLAMACPP_SERIES.match(name) for name in promql_metric_names(kept)):
        return False
    return not (names & HOST_SENSORS and not names & HOST_SENSORS & node_names)


@pytest.mark.integration
def test_every_dashboard_query_and_recording_rule_parses_and_has_data(stack: Stack) -> None:
    # An upstream error makes llmwatch_upstream_errors_total exist (its labels appear with the first error).
    forced = httpx.post(f"{stack.url('gateway')}/v1/chat/completions", headers={"X-Sim-Fault": "error"},
                        json=REQUESTS[1], timeout=30)  # fmt: skip
    assert forced.status_code >= 500, forced.text
    queries = {**dashboard_queries(), **recording_rules()}
    assert len(queries) > 100, len(queries)
    answers = {where: stack.query(expr) for where, expr in queries.items()}
    broken = {w: a.get("error") for w, a in answers.items() if a["status"] != "success"}
    assert not broken, "PromQL that Prometheus refuses:\n" + "\n".join(f"  {w}: {e}" for w, e in broken.items())
    pending = {w: e for w, e in queries.items() if needs_data(e, stack.node_metric_names)}
    parse_only = sorted(set(queries) - set(pending))

    def settled() -> bool:
        for where, expr in list(pending.items()):
            if has_data(stack.query(expr)):
                del pending[where]
        return not pending

    with contextlib.suppress(NotReady):  # the assertion below names what is missing
        wait_until(settled, 30, "data for every dashboard query and recording rule", interval=1.0)
    assert not pending, "no data:\n" + "\n".join(f"  {w}: {e}" for w, e in pending.items())

    groups = httpx.get(f"{stack.url('prometheus')}/api/v1/rules", timeout=5).json()["data"]["groups"]
    expected = {g["name"] for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]}
    expected |= {g["name"] for g in yaml.safe_load(engine_sizing.render(REPO))["groups"]}
    assert {g["name"] for g in groups} == expected
    unhealthy = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
    assert not unhealthy, unhealthy
    print(f"\n{len(queries)} expressions: {len(queries) - len(parse_only)} with data, {len(parse_only)} parse-only "
          f"(GPU, llama.cpp, several API servers or absent host sensors): {parse_only}")  # fmt: skip
