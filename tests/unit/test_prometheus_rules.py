"""Prometheus config and rules: promtool's own checks and unit tests, plus the repo's rules about the rules.

- promtool check config / check rules / test rules must pass (output shown on failure);
- every alert has a promtool test that fires and one that stays quiet; every computed rule has an expression test;
- alerts carry severity, component, summary, a "Check first" description and a runbook anchor that exists;
- thresholds live only in thresholds.yml; rules never name hosts; metric names match the gateway, relay and
  simulator (vLLM) contracts, and never the removed vLLM names or DCGM profiling fields.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from llmwatch.render import engine_sizing
from llmwatch.thresholds import ENGINE_SIZING_DEFAULTS
from tests.support import REPO, need_binary
from tests.support.promql import panels_of, registry_names, vllm_names

PROM = REPO / "prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))
TESTS = sorted((PROM / "tests").glob("*.yml"))
DOCS = REPO / "docs" / "alerting.md"
JOBS = {"gateway", "vllm", "vllm-processes", "node", "dcgm", "alertmanager", "relay", "prometheus"}
# dcgm-exporter default counters we use, plus the clock-event field under its DCGM >= 3.3 and older names.
# What dcgm-exporter collects in the compose stack (its counters file), plus the pre-DCGM-3.3 name of the clock
# reasons field that the rules read as a fallback.
DCGM_FIELDS = {
    line.split(",")[0].strip()
    for line in (REPO / "dcgm-exporter/counters.csv").read_text().splitlines()
    if line.strip() and not line.startswith("#")
} | {"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"}
CONSTANT = re.compile(r"^\s*vector\(\s*[-+0-9.eE]+\s*\)\s*$")


def promtool(*args: str | Path) -> None:
    done = subprocess.run(
        [need_binary("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load(path)["groups"] for rule in group["rules"]]


ALERTS = rules(PROM / "rules" / "alerts.yml")
RECORDED = [r for path in RULES for r in rules(path) if "record" in r]
# Read by `llmwatch doctor`, not by a rule.
TOOL_THRESHOLDS = {"threshold:engine_max_model_len:max"}


@pytest.mark.integration
def test_promtool_check_config() -> None:
    promtool("check", "config", PROM / "prometheus.yml")


@pytest.mark.integration
def test_promtool_check_rules() -> None:
    promtool("check", "rules", *RULES, REPO / ENGINE_SIZING_DEFAULTS)


@pytest.mark.integration
def test_the_documented_promtool_test_command_passes_from_a_checkout() -> None:
    """Exactly what docs/alerting.md says to run, through a shell (which expands the glob) from the repo root."""
    command = "promtool test rules prometheus/tests/*.yml"
    assert f"\n{command}\n" in DOCS.read_text(), "docs/alerting.md no longer documents this command"
    need_binary("promtool")
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.count("SUCCESS") == len(TESTS), done.stdout


@pytest.mark.unit
def test_the_committed_engine_sizing_defaults_are_the_compose_template_rendered_with_its_defaults() -> None:
    assert (REPO / ENGINE_SIZING_DEFAULTS).read_text() == engine_sizing.defaults(REPO), (
        f"{ENGINE_SIZING_DEFAULTS} is stale: run `make k8s`"
    )
    for path in TESTS:
        assert "../defaults/engine-sizing.yml" in load(path)["rule_files"], f"{path.name} misses the sizing rules"


# Everything below is pure: YAML and Python only.


@pytest.mark.unit
def test_every_alert_has_a_firing_and_a_quiet_promtool_test() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in TESTS:
        for case in load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in ALERTS}
    assert not names - fires, f"alerts with no promtool test that fires: {sorted(names - fires)}"
    assert not names - quiet, f"alerts with no promtool test that stays quiet: {sorted(names - quiet)}"
    assert not (fires | quiet) - names, f"tests for alerts that do not exist: {sorted((fires | quiet) - names)}"


@pytest.mark.unit
def test_every_computed_rule_has_an_expression_test() -> None:
    tested = " ".join(
        check["expr"] for path in TESTS for case in load(path)["tests"] for check in case.get("promql_expr_test", [])
    )
    computed = {r["record"] for r in RECORDED if not CONSTANT.match(r["expr"])}
    missing = {name for name in computed if not re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", tested)}
    assert not missing, f"recording rules with no promql_expr_test: {sorted(missing)}"


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


@pytest.mark.unit
@pytest.mark.parametrize("alert", ALERTS, ids=[a["alert"] for a in ALERTS])
def test_alert_has_severity_component_summary_check_first_and_a_runbook_anchor(alert: dict[str, Any]) -> None:
    labels, notes = alert.get("labels", {}), alert.get("annotations", {})
    assert labels.get("severity") in {"critical", "warning"}
    assert labels.get("component") in {"gateway", "engine", "gpu", "cpu", "monitoring", "relay"}
    assert notes.get("summary")
    assert "Check first:" in notes.get("description", "")
    runbook = notes.get("runbook_url", "")
    assert runbook == f"docs/alerting.md#{alert['alert'].lower()}"
    assert runbook.split("#")[1] in anchors(DOCS.read_text()), f"no heading for {runbook} in docs/alerting.md"


def thresholds_outside_rules() -> set[str]:
    """`threshold:*` names that the dashboards' queries and the load test's SLO file (loadtest/slo.yml) read: the
    operator's KPI targets live in thresholds.yml too, and some are judged there rather than alerted on."""
    used: set[str] = set()
    for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        for panel in panels_of(json.loads(path.read_text())):
            for target in panel.get("targets", []):
                used |= set(re.findall(r"threshold:[\w:]+", target.get("expr", "")))
    slo = load(REPO / "loadtest" / "slo.yml")
    for section in ("per_request", "slos"):
        used |= {entry["threshold"] for entry in slo[section].values() if "threshold" in entry}
    return used


@pytest.mark.unit
def test_thresholds_live_in_thresholds_yml_only() -> None:
    defined = {r["record"] for r in rules(PROM / "rules" / "thresholds.yml") if r["record"].startswith("threshold:")}
    defined |= {r["record"] for g in yaml.safe_load(engine_sizing.render(REPO))["groups"] for r in g["rules"]}
    used: set[str] = set()
    for path in RULES:
        for rule in rules(path):
            used |= set(re.findall(r"threshold:[\w:]+", rule["expr"]))
            if path.name != "thresholds.yml":
                assert "record" not in rule or not rule["record"].startswith("threshold:"), rule["record"]
    # Every threshold is read somewhere: by a rule, a dashboard or the load test; each of those reads only
    # thresholds that exist.
    used |= thresholds_outside_rules()
    assert used <= defined, f"thresholds used but not defined: {sorted(used - defined)}"
    assert defined - TOOL_THRESHOLDS <= used, f"thresholds defined but never used: {sorted(defined - used)}"
    for alert in ALERTS:
        literals = {float(n) for n in re.findall(r"(?:[<>]=?|[!=]=)\s*(\d+(?:\.\d+)?)", alert["expr"])}
        assert literals <= {0.0, 1.0}, f"{alert['alert']} compares with {literals}: put it in thresholds.yml"


@pytest.mark.unit
def test_rules_do_not_depend_on_host_names() -> None:
    hosts = ("127.0.0.1", "localhost", "gateway:", "engine:", "node-exporter", "dcgm-exporter", "relay:", "instance=")
    for path in RULES:
        for rule in rules(path):
            for host in hosts:
                assert host not in rule["expr"], f"{rule.get('alert') or rule.get('record')} names {host}"


@pytest.mark.unit
def test_metric_names_match_the_gateway_relay_simulator_and_dcgm_contracts() -> None:
    from llmwatch.gateway.metrics import GatewayMetrics
    from llmwatch.relay.metrics import RelayMetrics
    from llmwatch.simulator.settings import SimSettings
    from llmwatch.simulator.simulator import Simulator
    from llmwatch.vllm.metrics import REMOVED_METRICS

    registry = CollectorRegistry()
    GatewayMetrics(registry)
    RelayMetrics(registry, ["dingtalk"])
    Simulator(SimSettings(), registry)  # its llmwatch_sim_info; its vllm:* names are checked against the spec below
    ours = registry_names(registry)
    vllm = vllm_names()
    text = " ".join(r["expr"] for path in RULES for r in rules(path))
    for name in set(re.findall(r"(?<![\w:])(vllm:\w+|llmwatch_\w+|DCGM_\w+)", text)):
        assert name not in REMOVED_METRICS
        if name.startswith("vllm:"):
            assert name in vllm, f"{name} is not a vLLM 0.33 metric (llmwatch.vllm.metrics)"
        elif name.startswith("llmwatch_"):
            assert name in ours, f"{name} is not exposed by the gateway, the relay or the simulator"
        else:
            assert name in DCGM_FIELDS, f"{name}: not a dcgm-exporter field this stack relies on"
    assert "DCGM_FI_PROF" not in text  # missing on GeForce cards: never alert on them, or on their absence


@pytest.mark.unit
def test_prometheus_yml_scrapes_every_service_with_one_label_scheme() -> None:
    config = load(PROM / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == JOBS
    expected = {
        "gateway": "gateway:9464", "vllm": "engine:8000", "node": "node-exporter:9100", "dcgm": "dcgm-exporter:9400",
        "alertmanager": "alertmanager:9093", "relay": "relay:9099", "prometheus": "localhost:9090",
        "vllm-processes": "vllm-processes:9256",
    }  # fmt: skip
    for name, job in jobs.items():
        if name in {"dcgm", "vllm-processes"}:  # found by DNS: profiles without the exporter have none to list
            (sd,) = job["dns_sd_configs"]
            host = sd["names"][0]
            assert f"{host}:{sd['port']}" == expected[name]
            assert job["relabel_configs"] == [{"target_label": "service", "replacement": host}]
            continue
        (static,) = job["static_configs"]
        assert static["targets"] == [expected[name]]
        assert static["labels"]["service"], f"job {name} has no service label"
    assert config["rule_files"] == ["rules/*.yml", f"{engine_sizing.COMPOSE_DIR}/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert config["global"]["external_labels"] == {"stack": "llmwatch"}


@pytest.mark.unit
@pytest.mark.parametrize("path", [PROM / "prometheus.yml", *RULES, *TESTS], ids=lambda p: p.name)
def test_config_files_start_with_a_two_line_header(path: Path) -> None:
    first, second = path.read_text().splitlines()[:2]
    assert first.startswith("# ") and second.startswith("# "), f"{path.name} needs a two-line header comment"


@pytest.mark.unit
def test_every_up_selector_in_the_alerts_names_the_stacks_own_jobs() -> None:
    """On a shared Prometheus (Kubernetes) a bare `up` sees every team's targets; each alert names llmwatch's jobs.

    LLMWatchTargetDown covers every job prometheus.yml scrapes, so compose keeps alerting on each of its targets.
    """
    scrape_jobs = {job["job_name"] for job in load(PROM / "prometheus.yml")["scrape_configs"]}
    for alert in ALERTS:
        for selector in re.findall(r"(?<![\w:])up(?![\w:])\s*(\{[^}]*\})?", alert["expr"]):
            job = re.search(r'job\s*(=~?)\s*"([^"]+)"', selector)
            assert job, f"{alert['alert']}: `up{selector}` is not scoped to llmwatch's jobs"
            named = set(job.group(2).split("|")) if job.group(1) == "=~" else {job.group(2)}
            assert named <= scrape_jobs, f"{alert['alert']}: jobs {named - scrape_jobs} are not prometheus.yml's"
    [target_down] = [a for a in ALERTS if a["alert"] == "LLMWatchTargetDown"]
    scoped = re.fullmatch(r'up\{job=~"([^"]+)"\} == 0', target_down["expr"].strip())
    assert scoped and set(scoped.group(1).split("|")) == scrape_jobs
    assert "TargetDown" not in {a["alert"] for a in ALERTS}, "kube-prometheus-stack has its own TargetDown"
