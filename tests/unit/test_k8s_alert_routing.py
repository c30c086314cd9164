"""On a shared cluster's Alertmanager, llmwatch's AlertmanagerConfig sends llmwatch's alerts to the relay, and no other.

No operator runs here, so its step is modelled, from prometheus-operator v0.93.0 pkg/alertmanager/amcfg.go:
- getEnforcer: matcher strategy `None` -> noopEnforcer (nothing added); `OnNamespaceExceptForAlertmanagerNamespace`
  -> otherNamespaceEnforcer (nothing added for a config in Alertmanager's own namespace); anything else, unset
  included (the CRD's default, pkg/apis/monitoring/v1/alertmanager_types.go `+kubebuilder:default:="OnNamespace"`)
  -> namespaceEnforcer.processRoute, which appends `namespace="<the AlertmanagerConfig's namespace>"` to the
  config's top-level route. continueToNextRoute then sets `continue: true` on that route.
- convertRoute: each receiver becomes `<namespace>/<name>/<receiver>`; child routes are converted the same way.
- AddAlertmanagerConfigs: the generated routes go first, before the base configuration's own routes.
The base configuration is kube-prometheus-stack's default `alertmanager.config` (prometheus-community/helm-charts
charts/kube-prometheus-stack/values.yaml, chart 88.5.3): receiver "null" at the root, `alertname="Watchdog"` to "null".
The routing itself is Alertmanager's own: `amtool config routes test` on the assembled configuration.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import need_binary
from tests.support.k8s import NAMESPACE, Obj, build, documented_chart_values, find

pytestmark = pytest.mark.unit

ALERTMANAGER_NAMESPACE = "monitoring"
STRATEGIES = ("OnNamespace", "OnNamespaceExceptForAlertmanagerNamespace", "None")
# kube-prometheus-stack's default alertmanager.config route and receivers (values.yaml, chart 88.5.3).
CHART_BASE: dict[str, Any] = {
    "route": {
        "group_by": ["namespace"],
        "receiver": "null",
        "routes": [{"receiver": "null", "matchers": ['alertname = "Watchdog"']}],
    },
    "receivers": [{"name": "null"}],
}
# Alerts the chart's own rules fire (kube-prometheus-stack's general.rules and kubernetes-apps rules): labels as
# Prometheus sends them. None of them may reach the relay, the one about an llmwatch pod included.
CHART_ALERTS = {
    "Watchdog": {"alertname": "Watchdog", "severity": "none"},
    "InfoInhibitor": {"alertname": "InfoInhibitor", "severity": "none", "namespace": NAMESPACE},
    "TargetDown of the control plane": {
        "alertname": "TargetDown",
        "severity": "warning",
        "namespace": "kube-system",
        "job": "kube-scheduler",
    },
    "KubePodCrashLooping elsewhere": {
        "alertname": "KubePodCrashLooping",
        "severity": "warning",
        "namespace": "kube-system",
        "pod": "coredns-0",
    },
    "KubePodCrashLooping of an llmwatch pod": {
        "alertname": "KubePodCrashLooping",
        "severity": "warning",
        "namespace": NAMESPACE,
        "pod": "engine-0",
        "job": "kube-state-metrics",
    },
}


def documented_strategy() -> str:
    """The matcher strategy docs/kubernetes.md's kube-prometheus-stack values give (unset: the CRD's default)."""
    spec = documented_chart_values()["alertmanager"]["alertmanagerSpec"]
    strategy: str = spec.get("alertmanagerConfigMatcherStrategy", {}).get("type", "OnNamespace")
    return strategy


def _matcher(m: dict[str, str]) -> str:
    return f'{m["name"]}{m.get("matchType", "=")}"{m["value"]}"'


def _convert(route: dict[str, Any], prefix: str) -> dict[str, Any]:
    """convertRoute: the CRD's camelCase route as Alertmanager's, receivers prefixed with namespace/name/."""
    keys = {"groupBy": "group_by", "groupWait": "group_wait", "groupInterval": "group_interval"}
    keys |= {"repeatInterval": "repeat_interval", "continue": "continue"}
    out: dict[str, Any] = {"receiver": prefix + route["receiver"]}
    if route.get("matchers"):
        out["matchers"] = [_matcher(m) for m in route["matchers"]]
    out |= {snake: route[camel] for camel, snake in keys.items() if camel in route}
    if route.get("routes"):
        out["routes"] = [_convert(child, prefix) for child in route["routes"]]
    return out


def assembled(config: Obj, strategy: str) -> dict[str, Any]:
    """The Alertmanager configuration the operator writes for the chart's base config plus this AlertmanagerConfig."""
    namespace, name = config["metadata"]["namespace"], config["metadata"]["name"]
    prefix = f"{namespace}/{name}/"
    route = _convert(config["spec"]["route"], prefix)
    enforced = strategy not in ("None",) and not (
        strategy == "OnNamespaceExceptForAlertmanagerNamespace" and namespace == ALERTMANAGER_NAMESPACE
    )
    if enforced:
        route["matchers"] = [*route.get("matchers", []), f'namespace="{namespace}"']
    route["continue"] = True
    receivers = [
        {"name": prefix + r["name"], "webhook_configs": [{"url": w["url"]} for w in r["webhookConfigs"]]}
        for r in config["spec"]["receivers"]
    ]
    base = CHART_BASE["route"]
    return {
        "route": {**base, "routes": [route, *base["routes"]]},
        "receivers": [*CHART_BASE["receivers"], *receivers],
    }


def receivers_for(config_file: Path, labels: dict[str, str]) -> list[str]:
    """Alertmanager's routing of one alert: the receivers `amtool config routes test` prints."""
    done = subprocess.run(
        [need_binary("amtool"), "config", "routes", "test", f"--config.file={config_file}"]
        + [f"{k}={v}" for k, v in sorted(labels.items())],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(",")


def llmwatch_alerts() -> dict[str, dict[str, str]]:
    """Every alert of the rendered PrometheusRules, with the labels its rule gives it."""
    return {
        rule["alert"]: {"alertname": rule["alert"], **rule.get("labels", {})}
        for obj in build("overlays/observability")
        if obj["kind"] == "PrometheusRule"
        for group in obj["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def _write(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_only_llmwatch_alerts_reach_the_relay(strategy: str, tmp_path: Path) -> None:
    config = find(build("overlays/observability"), "AlertmanagerConfig", "llmwatch")
    path = _write(tmp_path, assembled(config, strategy))
    relay = f"{NAMESPACE}/llmwatch/relay"
    for what, labels in CHART_ALERTS.items():
        assert relay not in receivers_for(path, labels), f"{strategy}: {what} reaches the relay"
    alerts = llmwatch_alerts()
    assert len(alerts) > 20
    for name, labels in alerts.items():
        assert receivers_for(path, labels) == [relay], f"{strategy}: {name} does not reach the relay alone"


def test_docs_keep_the_operators_default_strategy() -> None:
    """OnNamespace: the relay's route carries `namespace="llmwatch"` on top of llmwatch's own label."""
    assert documented_strategy() == "OnNamespace"


def test_the_model_shows_the_old_advice_leaking_every_alert(tmp_path: Path) -> None:
    """The check can fail: strategy None and a route without llmwatch's label sent Watchdog to the relay."""
    config = find(build("overlays/observability"), "AlertmanagerConfig", "llmwatch")
    unscoped = {**config, "spec": {**config["spec"], "route": {**config["spec"]["route"], "matchers": []}}}
    path = _write(tmp_path, assembled(unscoped, "None"))
    assert f"{NAMESPACE}/llmwatch/relay" in receivers_for(path, CHART_ALERTS["Watchdog"])
    path = _write(tmp_path, assembled(unscoped, "OnNamespace"))
    assert f"{NAMESPACE}/llmwatch/relay" not in receivers_for(path, CHART_ALERTS["Watchdog"])
    assert f"{NAMESPACE}/llmwatch/relay" in receivers_for(path, CHART_ALERTS["KubePodCrashLooping of an llmwatch pod"])
