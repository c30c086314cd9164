"""Offline checks of the provisioned Grafana dashboards: ids, layout, data sources, variables and metric names.

Metric names are checked against what the real sources expose: the gateway's registry, the simulator's vLLM spec,
dcgm-exporter's default counters, the recording rules, and (integration) a real node-exporter scrape.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from llmwatch.render import engine_sizing
from tests.support import REPO, free_port, need_binary, running
from tests.support.llamacpp import capture_names
from tests.support.promql import (
    QUOTED,
    exposed_names,
    panels_of,
    process_exporter_names,
    promql_metric_names,
    registry_names,
    variable_expr,
    vllm_capture_names,
    vllm_names,
)

GRAFANA = REPO / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
DCGM_COUNTERS = REPO / "tests" / "fixtures" / "dcgm-default-counters.csv"
GRAFANA_BUILTIN_UIDS = {"-- Grafana --", "grafana"}
GRAFANA_BUILTIN_VARS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}
REMOVED_IN_VLLM_033 = {"vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"}


# --- Dashboards -------------------------------------------------------------------------------------------------
def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def expressions(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every Prometheus target and query variable."""
    for panel in panels_of(dash):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"panel {panel.get('id')} {panel.get('title')!r} {target.get('refId')}", target["expr"]
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query" and (var.get("datasource") or {}).get("type") == "prometheus":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            if (expr := variable_expr(query)) is not None:
                yield f"variable ${var['name']}", expr


def layout_problems(dash: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    seen_ids: set[Any] = set()
    cells: dict[tuple[int, int], Any] = {}
    top_level = {id(panel) for panel in dash.get("panels", [])}
    for panel in panels_of(dash):
        pid, pos = panel.get("id"), panel.get("gridPos", {})
        if not isinstance(pid, int) or pid in seen_ids:
            problems.append(f"panel {panel.get('title')!r}: id {pid!r} missing or not unique")
        seen_ids.add(pid)
        x, y, w, h = (pos.get(k, -1) for k in ("x", "y", "w", "h"))
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > 24:
            problems.append(f"panel {pid}: gridPos {pos} outside the 24-column grid")
            continue
        if id(panel) not in top_level:
            continue  # a collapsed row's panels sit where they would be once it is expanded
        for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
            if cell in cells:
                problems.append(f"panel {pid} overlaps panel {cells[cell]} at {cell}")
                break
            cells[cell] = pid
    return problems


def datasource_problems(dash: dict[str, Any], provisioned: dict[str, dict[str, Any]]) -> list[str]:
    """Every data source reference names a provisioned uid of the right type; every target has an expression."""
    by_name = {ds["name"]: ds for ds in provisioned.values()}

    def check(where: str, ref: Any) -> list[str]:
        if not isinstance(ref, dict):
            return [f"{where}: data source {ref!r} is not a {{type, uid}} reference"]
        if ref.get("uid") in GRAFANA_BUILTIN_UIDS:
            return []
        ds = provisioned.get(str(ref.get("uid")))
        if ds is None or ds["type"] != ref.get("type"):
            return [f"{where}: data source {ref} is not provisioned"]
        return []

    problems = []
    for panel in panels_of(dash):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("type") == "alertlist":
            source = by_name.get(panel.get("options", {}).get("datasource"))
            if source is None or source["type"] != "prometheus":
                problems.append(f"{where}: alert list must read Prometheus rules from a provisioned data source")
        if "alert" in panel:
            problems.append(f"{where}: legacy Grafana alert; alerts live in prometheus/rules")
        targets = panel.get("targets", [])
        if targets:
            problems += check(where, panel.get("datasource"))
        for target in targets:
            ref = target.get("datasource", panel.get("datasource"))
            problems += check(f"{where} {target.get('refId')}", ref)
            field = "expr" if isinstance(ref, dict) and ref.get("type") == "prometheus" else "query"
            if not str(target.get(field) or "").strip():
                problems.append(f"{where} {target.get('refId')}: target has no expression ({field})")
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            problems += check(f"variable ${var['name']}", var.get("datasource"))
    for annotation in dash.get("annotations", {}).get("list", []):
        problems += check(f"annotation {annotation.get('name')!r}", annotation.get("datasource"))
    return problems


def lucene_fields(dash: dict[str, Any]) -> set[str]:
    """Field names the Elasticsearch (Lucene) queries of a dashboard search on."""
    queries = [
        target["query"]
        for panel in panels_of(dash)
        for target in panel.get("targets", [])
        if (target.get("datasource") or panel.get("datasource") or {}).get("type") == "elasticsearch"
    ]
    return {field for q in queries for field in re.findall(r"(?<![\w.@])([A-Za-z_@][\w.@]*)\s*:", QUOTED.sub("", q))}


def undefined_variables(dash: dict[str, Any]) -> set[str]:
    defined = {var["name"] for var in dash.get("templating", {}).get("list", [])} | GRAFANA_BUILTIN_VARS
    used = {m[0] or m[1] for _, expr in expressions(dash) for m in re.findall(r"\$\{(\w+)[^}]*\}|\$(\w+)", expr)}
    return used - defined


def unknown_names(dashes: Iterable[dict[str, Any]], known: set[str], exempt_prefix: str | None = None) -> list[str]:
    found = []
    for dash in dashes:
        for where, expr in expressions(dash):
            for name in sorted(promql_metric_names(expr) - known):
                if not (exempt_prefix and name.startswith(exempt_prefix)):
                    found.append(f"{dash.get('uid')} {where}: {name}")
    return found


# --- What the real sources expose -------------------------------------------------------------------------------
def gateway_names() -> set[str]:
    from llmwatch.gateway.metrics import GatewayMetrics  # the shared contract module

    registry = CollectorRegistry()
    GatewayMetrics(registry)
    return registry_names(registry)


def dcgm_names() -> set[str]:
    with DCGM_COUNTERS.open(newline="") as fh:
        rows = [row for row in csv.reader(fh) if row and row[0].strip() and not row[0].lstrip().startswith("#")]
    return {row[0].strip() for row in rows}


def recording_rule_names() -> set[str]:
    files = sorted((REPO / "prometheus" / "rules").glob("*.y*ml"))
    groups = [group for path in files for group in (yaml.safe_load(path.read_text()) or {}).get("groups", [])]
    groups += yaml.safe_load(engine_sizing.render(REPO))["groups"]  # rendered from .env by compose
    return {rule["record"] for group in groups for rule in group.get("rules", []) if "record" in rule}


@pytest.fixture(scope="module")
def provisioned() -> dict[str, dict[str, Any]]:
    return {ds["uid"]: ds for ds in yaml.safe_load(DATASOURCES.read_text())["datasources"]}


@pytest.fixture(scope="module")
def dashboards() -> list[dict[str, Any]]:
    assert DASHBOARD_FILES, "no dashboards in grafana/dashboards"
    return [load(path) for path in DASHBOARD_FILES]


@pytest.fixture(scope="module")
def offline_names() -> set[str]:
    return (
        gateway_names()
        | vllm_names()
        | vllm_capture_names()
        | dcgm_names()
        | recording_rule_names()
        | capture_names()
        | process_exporter_names()
    )


# --- Unit tests -------------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (model) (rate(llmwatch_requests_total{status=~"5..", model=~"$model"}[$__rate_interval]))',
         {"llmwatch_requests_total"}),
        ("histogram_quantile(0.95, sum without (kind) (rate(vllm:e2e_request_latency_seconds_bucket[5m:1m])))",
         {"vllm:e2e_request_latency_seconds_bucket"}),
        ('a / on (instance) group_left (mode) b offset 1h30m > bool 1e3 and c{job="x}"} unless d @ 1609746000',
         {"a", "b", "c", "d"}),
        ('label_replace(x_total, "dst", "$1 by (y)", "src", "(.*)") or vector(0) * -Inf + NaN + 0x1F', {"x_total"}),
        ('{__name__="DCGM_FI_DEV_GPU_TEMP", gpu="0"} - count(node_load1 == 0) or on() vector(1)',
         {"DCGM_FI_DEV_GPU_TEMP", "node_load1"}),
        ("sum(rate([[metric_var]][5m])) + sum(rate(foo_seconds_count[${__range}]))", {"foo_seconds_count"}),
    ],
)  # fmt: skip
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


@pytest.mark.unit
def test_regex_metric_names_are_refused() -> None:
    with pytest.raises(ValueError, match="regex metric name"):
        promql_metric_names('{__name__=~"vllm:.*"}')


@pytest.mark.unit
def test_variable_queries_yield_their_promql() -> None:
    assert variable_expr('label_values(vllm:num_requests_running{model_name=~"$m"}, instance)') == (
        'vllm:num_requests_running{model_name=~"$m"}'
    )
    assert variable_expr("label_values(instance)") is None
    assert variable_expr("query_result(topk(3, llmwatch_requests_in_flight))") == "topk(3, llmwatch_requests_in_flight)"


@pytest.mark.unit
def test_dashboards_are_grafana_11_json_with_unique_uids(dashboards: list[dict[str, Any]]) -> None:
    uids = [dash.get("uid") for dash in dashboards]
    assert all(uids) and len(set(uids)) == len(uids), uids
    for dash in dashboards:
        assert dash["schemaVersion"] >= 39, f"{dash['uid']}: schemaVersion below Grafana 11's"
        assert dash.get("id") is None, f"{dash['uid']}: a provisioned dashboard must not carry a database id"


@pytest.mark.unit
@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_layout_ids_and_grid(path: Path) -> None:
    assert layout_problems(load(path)) == []


@pytest.mark.unit
@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_datasources_are_provisioned_and_targets_have_expressions(
    path: Path, provisioned: dict[str, dict[str, Any]]
) -> None:
    assert datasource_problems(load(path), provisioned) == []


@pytest.mark.unit
@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_every_variable_used_is_defined(path: Path) -> None:
    assert undefined_variables(load(path)) == set()


@pytest.mark.unit
def test_log_queries_use_access_log_fields(dashboards: list[dict[str, Any]]) -> None:
    schema = json.loads((REPO / "services" / "llmwatch" / "gateway" / "access-log.schema.json").read_text())
    # @timestamp and tags are added on the way in (Logstash's date filter and its derived tags).
    known = set(schema["properties"]) | {"@timestamp", "tags"}
    used = {field for dash in dashboards for field in lucene_fields(dash)}
    assert used and used <= known, used - known


@pytest.mark.unit
def test_metric_names_exist_in_real_sources(dashboards: list[dict[str, Any]], offline_names: set[str]) -> None:
    # node_* names are checked against a real node-exporter scrape by the integration test below.
    assert unknown_names(dashboards, offline_names, exempt_prefix="node_") == []


@pytest.mark.unit
def test_removed_vllm_metrics_are_not_used(dashboards: list[dict[str, Any]]) -> None:
    used = {name for dash in dashboards for _, expr in expressions(dash) for name in promql_metric_names(expr)}
    assert not used & {n for base in REMOVED_IN_VLLM_033 for n in {base} | exposed_names(base, "histogram")}


@pytest.mark.unit
def test_checks_catch_broken_panels(provisioned: dict[str, dict[str, Any]], offline_names: set[str]) -> None:
    prom = {"type": "prometheus", "uid": "prometheus"}
    broken = {
        "uid": "broken",
        "templating": {"list": []},
        "panels": [
            {"id": 1, "title": "made up", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 4}, "datasource": prom,
             "targets": [{"refId": "A", "expr": 'sum(rate(llmwatch_made_up_total{model=~"$model"}[5m]))'}]},
            {"id": 1, "title": "too wide", "gridPos": {"x": 18, "y": 0, "w": 8, "h": 4},
             "datasource": {"type": "prometheus", "uid": "nope"}, "targets": [{"refId": "A", "expr": " "}]},
            {"id": 3, "title": "overlap", "gridPos": {"x": 6, "y": 2, "w": 6, "h": 4}, "datasource": prom,
             "targets": [{"refId": "A", "expr": "vllm:gpu_cache_usage_perc"}]},
        ],
    }  # fmt: skip
    assert unknown_names([broken], offline_names) == [
        "broken panel 1 'made up' A: llmwatch_made_up_total",
        "broken panel 3 'overlap' A: vllm:gpu_cache_usage_perc",
    ]
    assert undefined_variables(broken) == {"model"}
    layout = layout_problems(broken)
    assert any("id 1" in p for p in layout) and any("outside" in p for p in layout)
    assert any("overlaps" in p for p in layout)
    problems = datasource_problems(broken, provisioned)
    assert any("not provisioned" in p for p in problems) and any("no expression" in p for p in problems)


@pytest.mark.unit
def test_datasource_provisioning(provisioned: dict[str, dict[str, Any]]) -> None:
    assert provisioned["prometheus"]["type"] == "prometheus"
    assert provisioned["prometheus"]["url"] == "http://prometheus:9090"
    assert [ds["uid"] for ds in provisioned.values() if ds.get("isDefault")] == ["prometheus"]
    es = provisioned["elasticsearch"]
    assert (es["type"], es["url"]) == ("elasticsearch", "http://elasticsearch:9200")
    assert es["jsonData"]["index"] == "logs-llm_gateway-*" and es["jsonData"]["timeField"] == "@timestamp"
    for ds in provisioned.values():
        for key, value in ds.get("secureJsonData", {}).items():
            # Secrets come from the environment only: no literal, no default.
            assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*\}|\$__env\{[A-Z][A-Z0-9_]*\}", str(value)), (ds["uid"], key)
        assert "password" not in ds and "basicAuthPassword" not in ds, ds["uid"]


@pytest.mark.unit
def test_dashboard_provider_and_headers() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())["providers"]
    assert [p["options"]["path"] for p in provider] == ["/etc/grafana/dashboards"]
    for path in sorted((GRAFANA / "provisioning").rglob("*.y*ml")):
        head = path.read_text().splitlines()[:2]
        assert len(head) == 2 and all(line.startswith("#") for line in head), f"{path}: two-line header comment"


@pytest.mark.unit
def test_no_grafana_managed_alert_rules() -> None:
    # Prometheus evaluates the alert rules; Grafana only shows them (alert list panel), never duplicates them.
    for path in sorted((GRAFANA / "provisioning").rglob("*.y*ml")):
        doc = yaml.safe_load(path.read_text()) or {}
        assert not doc.get("groups") and not doc.get("rules"), f"{path}: Grafana-managed alert rules"


# --- Integration: real binaries ---------------------------------------------------------------------------------
def _write_edge_sysfs(root: Path) -> Path:
    """A minimal RK3588-like sysfs (thermal zones, hwmon, cpufreq of one A55 and one A76 core) for the real binary."""
    files = {
        "class/thermal/thermal_zone0/type": "soc-thermal", "class/thermal/thermal_zone0/temp": "45000",
        "class/thermal/thermal_zone1/type": "bigcore0-thermal", "class/thermal/thermal_zone1/temp": "47230",
        "class/hwmon/hwmon0/name": "soc_thermal", "class/hwmon/hwmon0/temp1_input": "45000",
    }  # fmt: skip
    for zone in ("thermal_zone0", "thermal_zone1"):
        files[f"class/thermal/{zone}/policy"] = "step_wise"
        files[f"class/thermal/{zone}/mode"] = "enabled"
    for cpu, max_khz in (("cpu0", 1800000), ("cpu4", 2352000)):
        base = f"devices/system/cpu/{cpu}/cpufreq"
        for name, value in {
            "scaling_cur_freq": 1416000, "scaling_min_freq": 408000, "scaling_max_freq": max_khz,
            "cpuinfo_cur_freq": 1416000, "cpuinfo_min_freq": 408000, "cpuinfo_max_freq": max_khz,
            "cpuinfo_transition_latency": 40000, "scaling_governor": "schedutil", "scaling_driver": "cpufreq-dt",
            "scaling_available_governors": "ondemand userspace powersave performance schedutil",
            "scaling_available_frequencies": f"408000 816000 1416000 {max_khz}",
            "related_cpus": cpu.removeprefix("cpu"), "scaling_setspeed": "<unsupported>",
        }.items():  # fmt: skip
            files[f"{base}/{name}"] = str(value)
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content + "\n")
    return root


def _scrape(binary: str, flags: list[str], log: Path) -> set[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with running([binary, f"--web.listen-address=127.0.0.1:{port}", *flags], log, url):
        text = httpx.get(url, timeout=5.0).text
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.fixture(scope="module")
def node_exporter_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Series names the real prometheus-node-exporter exposes: this host, plus an edge-board sysfs."""
    binary = need_binary("prometheus-node-exporter")
    tmp = tmp_path_factory.mktemp("node-exporter")
    names = _scrape(binary, ["--no-collector.systemd"], tmp / "host.log")
    sysfs = _write_edge_sysfs(tmp / "sys")
    edge = ["--collector.disable-defaults", "--collector.cpufreq", "--collector.thermal_zone", "--collector.hwmon"]
    return names | _scrape(binary, [f"--path.sysfs={sysfs}", *edge], tmp / "edge.log")


@pytest.mark.integration
def test_node_metric_names_exist_in_real_node_exporter(
    dashboards: list[dict[str, Any]], offline_names: set[str], node_exporter_names: set[str]
) -> None:
    assert "node_cpu_seconds_total" in node_exporter_names and "node_thermal_zone_temp" in node_exporter_names
    assert unknown_names(dashboards, offline_names | node_exporter_names) == []
    made_up = {"uid": "x", "panels": [{"id": 1, "targets": [{"refId": "A", "expr": "node_made_up_bytes"}]}]}
    assert unknown_names([made_up], offline_names | node_exporter_names) == ["x panel 1 None A: node_made_up_bytes"]


@pytest.mark.integration
def test_every_expression_parses_with_promtool(dashboards: list[dict[str, Any]], tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    rules: list[dict[str, Any]] = []
    for dash in dashboards:
        for where, expr in expressions(dash):
            concrete = re.sub(r"\$\{?__range\}?|\$\{?__rate_interval\}?|\$\{?__interval\}?", "5m", expr)
            concrete = re.sub(r"\$\{\w+[^}]*\}|\$\w+", ".*", concrete)
            rules.append({"record": f"dashboard_check:expr_{len(rules)}", "expr": concrete, "labels": {"w": where}})
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(
        yaml.safe_dump({"groups": [{"name": "b", "rules": [{"record": "b:x", "expr": "sum(rate(x[5m])"}]}]})
    )
    assert subprocess.run([promtool, "check", "rules", str(broken)], capture_output=True, timeout=30).returncode != 0


VLLM_SELECTOR = re.compile(r"(vllm:\w+)\{([^}]*)\}")


def test_vllm_selectors_filter_on_labels_the_metric_has(dashboards: list[dict[str, Any]]) -> None:
    """A matcher on a label the metric lacks (vllm:cache_config_info has no model_name) blanks the panel."""
    from llmwatch.vllm.metrics import VLLM_METRICS

    specs = {spec.name: spec for spec in VLLM_METRICS}
    wrong = []
    for dash in dashboards:
        for panel in panels_of(dash):
            for target in panel.get("targets", []):
                for metric, matchers in VLLM_SELECTOR.findall(str(target.get("expr", ""))):
                    base = re.sub(r"_(total|bucket|sum|count)$", "", metric)
                    spec = specs.get(metric) or specs.get(base)
                    labels = set(spec.labels) | {"instance", "job", "le"} if spec else set()
                    used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
                    if spec and used - labels:
                        wrong.append(f"{dash['title']} / {panel.get('title')}: {metric} has no {used - labels}")
    assert wrong == []


@pytest.mark.unit
def test_threshold_lines_come_from_thresholds_yml_not_numbers(dashboards: list[dict[str, Any]]) -> None:
    """A time-series panel draws an alert or KPI line as a `threshold:*` series, never as a typed-in number: tuning
    prometheus/rules/thresholds.yml must move the line (a hard-coded 85 °C once sat beside CPUHot's 80 °C)."""
    typed = []
    for dash in dashboards:
        for panel in panels_of(dash):
            defaults = panel.get("fieldConfig", {}).get("defaults", {})
            drawn = defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off") != "off"
            steps = defaults.get("thresholds", {}).get("steps", [])
            numbers = [step["value"] for step in steps if step.get("value") is not None]
            if panel.get("type") == "timeseries" and drawn and numbers:
                typed.append(f"{dash['uid']}: {panel.get('title')} draws {numbers}")
    assert not typed, f"draw these as threshold:* series instead: {typed}"


@pytest.mark.unit
def test_kind_variable_all_is_user_traffic_without_warmup(dashboards: list[dict[str, Any]]) -> None:
    """`All` kinds are the schema's kinds less `warmup`: the gateway's warm-up answers (16 tokens, so empty) never
    show up as user traffic, empty answers or latency in a panel."""
    schema = json.loads((REPO / "services/llmwatch/gateway/access-log.schema.json").read_text())
    user_kinds = set(schema["properties"]["kind"]["enum"]) - {"warmup"}
    found = 0
    for dash in dashboards:
        for variable in dash.get("templating", {}).get("list", []):
            if variable.get("name") == "kind":
                found += 1
                assert set(variable["query"].split(",")) == user_kinds, dash["uid"]
                assert set(variable["allValue"].split("|")) == user_kinds, f"{dash['uid']}: All must not match warmup"
    assert found, "no dashboard has a kind variable"
