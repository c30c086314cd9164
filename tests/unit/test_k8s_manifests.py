"""deploy/k8s as `kubectl kustomize` builds it, checked offline: schemas, cross-references, and parity with compose.

No cluster runs here. Core objects are validated with PyPI kubernetes-validate (strict: unknown fields fail);
prometheus-operator objects with npm @kubernetes-models/prometheus-operator's schemas; every CRD field used is
checked against the CRD's documented fields (DOCUMENTED below, with its source). docs/kubernetes.md lists what only
a cluster can show.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml

from llmwatch.render import engine_sizing
from llmwatch.render.k8s.objects import ALERT_LABELS
from tests.support import REPO, need_binary
from tests.support.k8s import (
    BUILDS,
    LOGS_NAMESPACE,
    MODELS_DIR,
    NAMESPACE,
    SERVING,
    Obj,
    build,
    containers,
    daemon_pod_specs,
    documented_chart_values,
    env_example,
    find,
    pod_owners,
    pod_template,
    selects,
    tolerates,
)

pytestmark = pytest.mark.unit

# The Kubernetes release the schemas are checked against: the oldest one the manifests need (HPA v2, PDB v1,
# StatefulSet persistentVolumeClaimRetentionPolicy unused); kubectl here is 1.32.
KUBE_VERSION = "1.32.0"
CRD_GROUPS = ("monitoring.coreos.com", "k8s.elastic.co")

# Every field path the CRD objects use, as the CRDs document them. Sources, read at these tags:
#   elastic/cloud-on-k8s v3.5.0, config/crds/v1/resources/{elasticsearch.k8s.elastic.co_elasticsearches,
#     kibana.k8s.elastic.co_kibanas, logstash.k8s.elastic.co_logstashes, beat.k8s.elastic.co_beats}.yaml
#   prometheus-operator/prometheus-operator v0.93.0, example/prometheus-operator-crd/monitoring.coreos.com_{
#     servicemonitors, podmonitors, prometheusrules, alertmanagerconfigs}.yaml
# Below a FREE_FORM key the CRD takes any object (config, pipelines: x-kubernetes-preserve-unknown-fields), or a core
# type the tests validate with kubernetes-validate (podTemplate, volumeClaimTemplates, service), or a label map.
FREE_FORM = {"config", "pipelines", "podTemplate", "volumeClaimTemplates", "service", "matchLabels", "labels"}
FREE_FORM |= {"annotations"}
DOCUMENTED: dict[str, set[str]] = {
    "Elasticsearch": {
        "spec.version",
        "spec.http",
        "spec.http.tls",
        "spec.http.tls.selfSignedCertificate",
        "spec.http.tls.selfSignedCertificate.disabled",
        "spec.nodeSets",
        "spec.nodeSets[].name",
        "spec.nodeSets[].count",
        "spec.nodeSets[].config",
        "spec.nodeSets[].podTemplate",
        "spec.nodeSets[].volumeClaimTemplates",
    },
    "Kibana": {
        "spec.version",
        "spec.count",
        "spec.config",
        "spec.elasticsearchRef",
        "spec.elasticsearchRef.name",
        "spec.http",
        "spec.http.tls",
        "spec.http.tls.selfSignedCertificate",
        "spec.http.tls.selfSignedCertificate.disabled",
        "spec.podTemplate",
    },
    "Logstash": {
        "spec.version",
        "spec.count",
        "spec.config",
        "spec.pipelines",
        "spec.podTemplate",
        "spec.services",
        "spec.services[].name",
        "spec.services[].service",
        "spec.volumeClaimTemplates",
    },
    "Beat": {"spec.type", "spec.version", "spec.config", "spec.daemonSet", "spec.daemonSet.podTemplate"},
    "ServiceMonitor": {
        "spec.selector",
        "spec.selector.matchLabels",
        "spec.namespaceSelector",
        "spec.namespaceSelector.matchNames",
        "spec.endpoints",
        "spec.endpoints[].port",
        "spec.endpoints[].path",
        "spec.endpoints[].interval",
        "spec.endpoints[].relabelings",
        "spec.endpoints[].relabelings[].targetLabel",
        "spec.endpoints[].relabelings[].replacement",
    },
    "PodMonitor": {
        "spec.selector",
        "spec.selector.matchLabels",
        "spec.podMetricsEndpoints",
        "spec.podMetricsEndpoints[].port",
        "spec.podMetricsEndpoints[].path",
        "spec.podMetricsEndpoints[].interval",
        "spec.podMetricsEndpoints[].relabelings",
        "spec.podMetricsEndpoints[].relabelings[].targetLabel",
        "spec.podMetricsEndpoints[].relabelings[].replacement",
    },
    "PrometheusRule": {
        "spec.groups",
        "spec.groups[].name",
        "spec.groups[].rules",
        "spec.groups[].rules[].record",
        "spec.groups[].rules[].alert",
        "spec.groups[].rules[].expr",
        "spec.groups[].rules[].for",
        "spec.groups[].rules[].labels",
        "spec.groups[].rules[].annotations",
    },
    "AlertmanagerConfig": {
        "spec.route",
        "spec.route.receiver",
        "spec.route.groupBy",
        "spec.route.groupWait",
        "spec.route.groupInterval",
        "spec.route.repeatInterval",
        "spec.route.matchers",
        "spec.route.matchers[].name",
        "spec.route.matchers[].matchType",
        "spec.route.matchers[].value",
        "spec.route.routes",
        # Child routes are schemaless in the CRD (preserve-unknown-fields); the operator reads them as a Route.
        "spec.route.routes[].receiver",
        "spec.route.routes[].matchers",
        "spec.route.routes[].matchers[].name",
        "spec.route.routes[].matchers[].matchType",
        "spec.route.routes[].matchers[].value",
        "spec.route.routes[].groupWait",
        "spec.route.routes[].repeatInterval",
        "spec.receivers",
        "spec.receivers[].name",
        "spec.receivers[].webhookConfigs",
        "spec.receivers[].webhookConfigs[].url",
        "spec.receivers[].webhookConfigs[].sendResolved",
        "spec.inhibitRules",
        "spec.inhibitRules[].equal",
        *(
            f"spec.inhibitRules[].{side}{field}"
            for side in ("sourceMatch", "targetMatch")
            for field in ("", "[].name", "[].matchType", "[].value")
        ),
    },
}
# Pod labels ECK puts on the pods it creates, which the observability overlay's policies select (cloud-on-k8s v3.5.0:
# pkg/controller/elasticsearch/label/label.go ClusterNameLabelName, pkg/controller/kibana/label/label.go
# KibanaNameLabelName, pkg/controller/logstash/labels/labels.go NameLabelName, pkg/controller/beat/common/labels.go
# NameLabelName), each valued with the resource's name.
ECK_POD_LABELS = {
    "Elasticsearch": "elasticsearch.k8s.elastic.co/cluster-name",
    "Kibana": "kibana.k8s.elastic.co/name",
    "Logstash": "logstash.k8s.elastic.co/name",
    "Beat": "beat.k8s.elastic.co/name",
}
# Service names ECK derives (cloud-on-k8s v3.5.0 pkg/apis/*/name.go: <name>-es-http, <name>-kb-http,
# <name>-ls-<service>, <name>-es-elastic-user with key `elastic`), which the manifests name.
ECK_NAMES = {
    "http://elasticsearch-es-http:9200": ("Elasticsearch", "elasticsearch"),
    "http://kibana-kb-http:5601": ("Kibana", "kibana"),
    f"logstash-ls-beats.{NAMESPACE}.svc:5044": ("Logstash", "logstash"),
}
# Paths each server answers probes on, as the products define them: the llmwatch roles are run for real by
# tests/integration/test_k8s_probes.py; vLLM's /health is its OpenAI server's (vllm/entrypoints/openai/api_server.py),
# Open WebUI's /health the one its Dockerfile HEALTHCHECK and compose use.
PROBE_PATHS = {
    "vllm": {"/health"},
    "sim": {"/health"},
    "gateway": {"/healthz", "/readyz", "/health"},
    "relay": {"/healthz"},
    "open-webui": {"/health"},
    "vllm-processes": {"/metrics"},
}


def _is_crd(obj: Obj) -> bool:
    return any(obj["apiVersion"].split("/")[0].endswith(group) for group in CRD_GROUPS)


def _all_objects() -> Iterator[tuple[str, Obj]]:
    for name in BUILDS:
        for obj in build(name):
            yield name, obj


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return compose


# Filebeat's objects, the only ones outside llmwatch: root with hostPath needs the `privileged` level.
IN_LOGS_NAMESPACE = {("Beat", "filebeat"), ("ServiceAccount", "filebeat"), ("NetworkPolicy", "default-deny-ingress")}


@pytest.mark.parametrize("name", BUILDS)
def test_every_build_renders_into_the_llmwatch_namespace(name: str) -> None:
    objects = build(name)
    assert objects, f"{name} built nothing"
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    namespaced = [o for o in objects if o["kind"] not in cluster_scoped]
    logs = {(o["kind"], o["metadata"]["name"]) for o in namespaced if o["metadata"].get("namespace") == LOGS_NAMESPACE}
    wrong = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in namespaced
        if o["metadata"].get("namespace") not in (NAMESPACE, LOGS_NAMESPACE)
    ]
    assert not wrong, f"{name}: objects outside namespace {NAMESPACE}: {wrong}"
    assert logs == (IN_LOGS_NAMESPACE if name == "overlays/observability" else set()), f"{name}: {logs}"
    for binding in (o for o in objects if o["kind"] == "ClusterRoleBinding"):
        for subject in binding["subjects"]:
            account = find(objects, "ServiceAccount", subject["name"])
            assert subject["namespace"] == account["metadata"]["namespace"], f"{binding['metadata']['name']}"


@pytest.mark.parametrize("name", BUILDS)
def test_core_objects_pass_strict_kubernetes_schemas(name: str) -> None:
    errors = []
    for obj in build(name):
        if _is_crd(obj):
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)


def _embedded_core_objects(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """Core objects inside ECK resources: pod templates, volume claim templates, Logstash's Services."""
    spec = obj["spec"]
    templates = [spec.get("podTemplate"), spec.get("daemonSet", {}).get("podTemplate")]
    templates += [node_set.get("podTemplate") for node_set in spec.get("nodeSets", [])]
    for template in filter(None, templates):
        yield (
            "podTemplate",
            {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template},
        )
    claims = spec.get("volumeClaimTemplates", [])
    claims += [c for node_set in spec.get("nodeSets", []) for c in node_set.get("volumeClaimTemplates", [])]
    for claim in claims:
        yield "volumeClaimTemplates", {"apiVersion": "v1", "kind": "PersistentVolumeClaim", **claim}
    for service in spec.get("services", []):
        body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": service["name"]}, **service["service"]}
        yield "services", body


def test_eck_embedded_pod_templates_claims_and_services_pass_strict_schemas() -> None:
    errors, checked = [], 0
    for obj in build("overlays/observability"):
        if obj["apiVersion"].split("/")[0].endswith("k8s.elastic.co"):
            for where, core in _embedded_core_objects(obj):
                checked += 1
                try:
                    kubernetes_validate.validate(core, KUBE_VERSION, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    errors.append(f"{obj['kind']}/{obj['metadata']['name']} {where}: {exc.message} {list(exc.path)}")
    # 4 pod templates (Elasticsearch, Kibana, Logstash, Filebeat), 2 claims, 1 Service (Logstash beats)
    assert checked == 7, f"expected 7 embedded objects, checked {checked}"
    assert not errors, "\n".join(errors)


def _field_paths(node: Any, prefix: str) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}"
            yield path
            if key not in FREE_FORM:
                yield from _field_paths(value, path)
    elif isinstance(node, list):
        for item in node:
            yield from _field_paths(item, prefix + "[]")


def test_every_crd_field_used_is_documented_by_its_crd() -> None:
    seen: set[str] = set()
    undocumented = []
    for obj in build("overlays/observability"):
        if not _is_crd(obj):
            continue
        kind = obj["kind"]
        seen.add(kind)
        assert kind in DOCUMENTED, f"{kind}: no documented fields recorded; read its CRD and add them to DOCUMENTED"
        undocumented += [f"{kind}: {p}" for p in _field_paths(obj["spec"], "spec") if p not in DOCUMENTED[kind]]
    assert not undocumented, "fields the CRDs do not document (a typo is pruned silently by the API server):\n" + (
        "\n".join(sorted(set(undocumented)))
    )
    assert seen == set(DOCUMENTED)


def test_field_check_rejects_a_misspelt_field() -> None:
    monitor = {"spec": {"endpoints": [{"port": "metrics", "relabeling": []}]}}
    assert "spec.endpoints[].relabeling" not in DOCUMENTED["ServiceMonitor"]
    assert "spec.endpoints[].relabeling" in set(_field_paths(monitor["spec"], "spec"))


def _validate_prometheus_operator(objects: list[Obj]) -> list[dict[str, Any]]:
    package = MODELS_DIR / "node_modules/@kubernetes-models/prometheus-operator"
    assert package.is_dir(), f"{package} missing: run `scripts/install.sh test` (make test does)"
    result = subprocess.run(
        [need_binary("node"), str(REPO / "tests/k8s_validate_crds.mjs"), str(MODELS_DIR)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answers: list[dict[str, Any]] = json.loads(result.stdout)
    return answers


def test_prometheus_operator_objects_pass_the_operator_schemas() -> None:
    objects = [o for o in build("overlays/observability") if o["apiVersion"].startswith("monitoring.coreos.com/")]
    kinds = {o["kind"] for o in objects}
    assert kinds == {"ServiceMonitor", "PodMonitor", "PrometheusRule", "AlertmanagerConfig"}
    answers = _validate_prometheus_operator(objects)
    assert len(answers) == len(objects)
    errors = [f"{a['kind']}/{a['name']}: {a['error']}" for a in answers if a["error"]]
    assert not errors, "\n".join(errors)


def test_prometheus_operator_schemas_reject_a_bad_object() -> None:
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "bad"},
        "spec": {"selector": {}, "endpoints": [{"port": 9464}]},
    }
    [answer] = _validate_prometheus_operator([monitor])
    assert answer["error"] and "port" in answer["error"]


# ---- cross-references -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVING)
def test_workload_selectors_match_their_pod_labels(name: str) -> None:
    for owner in pod_owners(build(name)):
        labels = pod_template(owner)["metadata"]["labels"]
        assert selects(owner["spec"]["selector"], labels), f"{owner['kind']}/{owner['metadata']['name']}"


def _pods(objects: tuple[Obj, ...]) -> list[tuple[Obj, dict[str, str]]]:
    return [(owner, pod_template(owner)["metadata"].get("labels", {})) for owner in pod_owners(objects)]


@pytest.mark.parametrize("name", SERVING)
def test_services_select_pods_and_target_their_container_ports(name: str) -> None:
    objects = build(name)
    services = [o for o in objects if o["kind"] == "Service"]
    assert {s["metadata"]["name"] for s in services} == {"engine", "gateway", "relay", "open-webui"}
    for service in services:
        matched = [owner for owner, labels in _pods(objects) if selects(service["spec"]["selector"], labels)]
        assert len(matched) == 1, f"Service/{service['metadata']['name']} selects {len(matched)} workloads"
        ports = {p["name"]: p["containerPort"] for c in containers(matched[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service/{service['metadata']['name']}: no container port {port}"
            assert port["port"] == ports[port["targetPort"]], "Service port and container port differ"


@pytest.mark.parametrize("name", SERVING)
def test_pdb_hpa_and_stateful_sets_point_at_what_exists(name: str) -> None:
    objects = build(name)
    gateway = find(objects, "Deployment", "gateway")
    pdb = find(objects, "PodDisruptionBudget", "gateway")
    assert selects(pdb["spec"]["selector"], pod_template(gateway)["metadata"]["labels"])
    target = find(objects, "HorizontalPodAutoscaler", "gateway")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "gateway")
    for owner in pod_owners(objects):
        if owner["kind"] == "StatefulSet":
            service = find(objects, "Service", owner["spec"]["serviceName"])
            assert selects(service["spec"]["selector"], pod_template(owner)["metadata"]["labels"])


@pytest.mark.parametrize("name", SERVING)
def test_probes_use_named_ports_and_paths_the_server_answers(name: str) -> None:
    for owner in pod_owners(build(name)):
        for container in containers(owner):
            ports = {p["name"] for p in container.get("ports", [])}
            probes = [container.get(k) for k in ("startupProbe", "readinessProbe", "livenessProbe")]
            assert any(probes), f"{container['name']} has no probe"
            for probe in filter(None, probes):
                get = probe["httpGet"]
                assert get["port"] in ports, f"{container['name']}: probe port {get['port']} is not a named port"
                assert get["path"] in PROBE_PATHS[container["name"]], f"{container['name']}: {get['path']}"


def test_engine_has_startup_readiness_and_liveness_on_health_and_one_gpu() -> None:
    engine = find(build("overlays/gpu"), "StatefulSet", "engine")
    vllm = by_name(containers(engine))["vllm"]
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert vllm[kind]["httpGet"]["path"] == "/health"
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert [c["metadata"]["name"] for c in engine["spec"]["volumeClaimTemplates"]] == ["model-cache"]
    assert {"name": "model-cache", "mountPath": "/root/.cache/huggingface"} in vllm["volumeMounts"]


def test_sim_overlay_runs_the_simulator_in_the_gateways_image_without_a_gpu() -> None:
    objects = build("overlays/sim")
    engine = find(objects, "StatefulSet", "engine")
    [sim] = containers(engine)
    assert sim["name"] == "sim"
    assert sim["image"] == containers(find(objects, "Deployment", "gateway"))[0]["image"]
    assert "volumeClaimTemplates" not in engine["spec"]
    assert "nvidia.com/gpu" not in json.dumps(engine)


def _gateway_upstreams(objects: tuple[Obj, ...], tmp_path: Any) -> list[str]:
    """Run the gateway container's own start script with a stand-in `llmwatch` that prints what it was given."""
    [gateway] = containers(find(objects, "Deployment", "gateway"))
    env = {e["name"]: e["value"] for e in gateway["env"] if "value" in e}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in = bin_dir / "llmwatch"
    stand_in.write_text('#!/bin/sh\nprintf "%s\\n" "$LLMWATCH_GATEWAY_UPSTREAM"\n')
    stand_in.chmod(0o755)
    script = gateway["args"][0].replace("/run/llmwatch/api-keys", str(tmp_path / "api-keys"))
    run_env = {**env, "GATEWAY_API_KEY": "k", "PATH": f"{bin_dir}:/usr/bin:/bin"}
    result = subprocess.run([*gateway["command"], script], env=run_env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "api-keys").read_text() == "open-webui=k forward-user\n"
    return result.stdout.strip().split(",")


@pytest.mark.parametrize("name", SERVING)
def test_gateway_gets_one_upstream_per_engine_replica(name: str, tmp_path: Any) -> None:
    objects = build(name)
    engine = find(objects, "StatefulSet", "engine")
    service = find(objects, "Service", engine["spec"]["serviceName"])
    [port] = service["spec"]["ports"]
    replicas = engine["spec"]["replicas"]
    expected = [f"http://engine-{i}.{service['metadata']['name']}:{port['port']}" for i in range(replicas)]
    assert _gateway_upstreams(objects, tmp_path) == expected
    assert service["spec"]["clusterIP"] == "None", "per-pod DNS names need a headless Service"


def test_gateway_script_refuses_to_start_without_the_api_key(tmp_path: Any) -> None:
    [gateway] = containers(find(build("overlays/gpu"), "Deployment", "gateway"))
    script = gateway["args"][0]
    result = subprocess.run(
        [*gateway["command"], script], env={"ENGINE_REPLICAS": "1"}, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "GATEWAY_API_KEY" in result.stderr


def _policy_allows(policy: Obj, from_labels: dict[str, str], port: str | int, namespace: str = NAMESPACE) -> bool:
    for rule in policy["spec"].get("ingress", []):
        ports = [p["port"] for p in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        if "from" not in rule:
            return True
        for peer in rule["from"]:
            ns_ok = (
                selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace})
                if "namespaceSelector" in peer
                else namespace == NAMESPACE
            )
            pod_ok = selects(peer["podSelector"], from_labels) if "podSelector" in peer else True
            if ns_ok and pod_ok:
                return True
    return False


PROMETHEUS = ({"app.kubernetes.io/name": "prometheus"}, "monitoring")
ALERTMANAGER = ({"app.kubernetes.io/name": "alertmanager"}, "monitoring")


@pytest.mark.parametrize("name", SERVING)
def test_network_policies_let_only_the_gateway_reach_the_engine_api(name: str) -> None:
    objects = build(name)
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    deny = find(objects, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    pods = {
        owner["metadata"]["name"]: (pod_template(owner)["metadata"]["labels"], containers(owner))
        for owner in pod_owners(objects)
    }

    def allowed(target: str, source: tuple[dict[str, str], str], port: str) -> bool:
        labels = pods[target][0]
        applying = [p for p in policies if p["spec"]["podSelector"] and selects(p["spec"]["podSelector"], labels)]
        return any(_policy_allows(p, source[0], port, source[1]) for p in applying)

    for target, (labels, _) in pods.items():
        assert any(p["spec"]["podSelector"] and selects(p["spec"]["podSelector"], labels) for p in policies), target
    local = {n: (labels, NAMESPACE) for n, (labels, _) in pods.items()}
    assert allowed("engine", local["gateway"], "http")
    for other in ("open-webui", "relay", "engine"):
        assert not allowed("engine", local[other], "http"), f"{other} must not reach the engine's API"
    assert not allowed("engine", ({"app.kubernetes.io/name": "grafana"}, "monitoring"), "http")
    assert allowed("gateway", local["open-webui"], "http")
    assert not allowed("gateway", local["relay"], "http")
    assert not allowed("gateway", PROMETHEUS, "http"), "Prometheus scrapes the metrics port, not the API"
    # Prometheus reaches every metrics endpoint: the gateway's separate listener, the engine's and the relay's port.
    for target, port in (("gateway", "metrics"), ("engine", "http"), ("relay", "http")):
        assert allowed(target, PROMETHEUS, port), f"Prometheus cannot scrape {target}:{port}"
    assert allowed("relay", ALERTMANAGER, "http")
    assert not allowed("relay", local["open-webui"], "http")


def test_gateway_metrics_port_is_the_flag_it_is_given() -> None:
    [gateway] = containers(find(build("overlays/gpu"), "Deployment", "gateway"))
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    words = shlex.split(gateway["args"][0].splitlines()[-1])
    assert words[:2] == ["exec", "llmwatch"]
    flags = dict(zip(words[3::2], words[4::2], strict=False))
    assert int(flags["--port"]) == ports["http"] and int(flags["--metrics-port"]) == ports["metrics"]


# ---- parity with compose ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVING)
def test_container_names_are_compose_service_names(name: str) -> None:
    services = set(_compose()["services"])
    names = {c["name"] for owner in pod_owners(build(name)) for c in containers(owner)}
    engine = {"vllm", "vllm-processes"} if name.endswith("gpu") else {"sim"}
    assert names == engine | {"gateway", "open-webui", "relay"}
    assert names <= services


def test_engine_flags_are_compose_flags_with_env_example_defaults() -> None:
    objects = build("overlays/gpu")
    flags = find(objects, "ConfigMap", "engine-flags")["data"]
    defaults = env_example()
    for key, value in flags.items():
        assert key in defaults, f"engine-flags {key} is not an .env.example variable"
        assert value == defaults[key], f"engine-flags {key}={value!r}, .env.example says {defaults[key]!r}"
    compose = _compose()["services"]
    for service, container_name, overlay in (("vllm", "vllm", "overlays/gpu"), ("sim", "sim", "overlays/sim")):
        compose_flags = set(re.findall(r"--[a-z-]+", compose[service]["command"])) - {"--model"}
        engine = find(build(overlay), "StatefulSet", "engine")
        [container] = [c for c in containers(engine) if c["name"] == container_name]
        k8s_flags = set(re.findall(r"--[a-z-]+", container["args"][0]))
        assert k8s_flags == compose_flags, f"{service}: compose {compose_flags ^ k8s_flags} differ"


def by_name(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in found}


def test_vllm_processes_runs_as_compose_runs_it_in_the_engines_process_namespace() -> None:
    """The sidecar is compose's vllm-processes: the same command, word for word, in a pod that shares its process
    namespace (the sim overlay drops both: no API servers to watch)."""
    engine = find(build("overlays/gpu"), "StatefulSet", "engine")
    sidecar = by_name(containers(engine))["vllm-processes"]
    compose = _compose()["services"]["vllm-processes"]
    assert sidecar["command"] + sidecar["args"] == compose["command"].split()
    assert pod_template(engine)["spec"]["shareProcessNamespace"] is True
    assert sidecar["securityContext"]["runAsNonRoot"] and sidecar["securityContext"]["capabilities"]["drop"] == ["ALL"]
    sim = find(build("overlays/sim"), "StatefulSet", "engine")
    assert [c["name"] for c in containers(sim)] == ["sim"] and "shareProcessNamespace" not in pod_template(sim)["spec"]


def test_vllm_takes_the_model_positionally() -> None:
    vllm = by_name(containers(find(build("overlays/gpu"), "StatefulSet", "engine")))["vllm"]
    words = vllm["args"][0].split()
    assert words[:4] == ["exec", "vllm", "serve", '"${VLLM_MODEL:?set'], "vllm serve MODEL, not --model"
    assert "--model" not in words


def test_images_are_pinned_as_in_env_example() -> None:
    pins = env_example()
    expected = {
        "vllm/vllm-openai": pins["VLLM_VERSION"],
        "ghcr.io/open-webui/open-webui": pins["OPEN_WEBUI_VERSION"],
        "llmwatch": pins["LLMWATCH_VERSION"],
    }
    seen = set()
    for name in BUILDS:
        for owner in pod_owners(build(name)):
            for container in containers(owner):
                image, _, tag = container["image"].rpartition(":")
                assert image in expected, f"{name}: unexpected image {container['image']}"
                assert tag == expected[image], f"{name}: {container['image']}, .env.example pins {expected[image]}"
                seen.add(image)
    assert seen == set(expected)
    for obj in build("overlays/observability"):
        if obj["apiVersion"].split("/")[0].endswith("k8s.elastic.co"):
            assert obj["spec"]["version"] == pins["ELASTIC_VERSION"], f"{obj['kind']}: not ELASTIC_VERSION"


def _secret_refs(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            yield node["secretKeyRef"]
        for value in node.values():
            yield from _secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_refs(item)


def test_secret_keys_are_env_example_names() -> None:
    """The operator fills Secret llmwatch from the same names as compose's .env (docs/kubernetes.md)."""
    names = env_example()
    refs = {ref["key"] for _, obj in _all_objects() for ref in _secret_refs(obj) if ref["name"] == "llmwatch"}
    assert {"GATEWAY_API_KEY", "WEBUI_SECRET_KEY", "WEBUI_ADMIN_PASSWORD", "LOGSTASH_WRITER_PASSWORD"} <= refs
    assert refs <= set(names), f"Secret llmwatch keys that .env.example does not list: {refs - set(names)}"


def test_open_webui_keeps_persistent_config_off_and_data_on_a_claim() -> None:
    webui = find(build("overlays/gpu"), "StatefulSet", "open-webui")
    [container] = containers(webui)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ENABLE_PERSISTENT_CONFIG"] == "false"
    assert env["ENABLE_SIGNUP"] == "false", "with persistent config off, only ENABLE_SIGNUP keeps strangers out"
    assert env["OPENAI_API_BASE_URL"] == "http://gateway:4000/v1"
    assert [c["metadata"]["name"] for c in webui["spec"]["volumeClaimTemplates"]] == ["data"]


# ---- observability ------------------------------------------------------------------------------------------------


def test_monitors_select_the_serving_pods_on_named_ports_with_compose_job_names() -> None:
    obs = build("overlays/observability")
    prometheus = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())
    compose_jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
    for name in SERVING:
        objects = build(name)
        for monitor in (o for o in obs if o["kind"] in ("ServiceMonitor", "PodMonitor")):
            spec = monitor["spec"]
            endpoints = spec.get("endpoints", spec.get("podMetricsEndpoints"))
            for endpoint in endpoints:
                jobs = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
                assert len(jobs) == 1 and jobs[0] in compose_jobs, f"{monitor['metadata']['name']}: job {jobs}"
            if "namespaceSelector" in spec:
                continue  # dcgm-exporter: the GPU Operator's Service, in its own namespace
            if monitor["kind"] == "ServiceMonitor":
                [target] = [
                    o for o in objects if o["kind"] == "Service" and selects(spec["selector"], o["metadata"]["labels"])
                ]
                ports = {p["name"] for p in target["spec"]["ports"]}
            else:
                [owner] = [o for o, labels in _pods(objects) if selects(spec["selector"], labels)]
                ports = {p["name"] for c in containers(owner) for p in c.get("ports", [])}
            # An endpoint on a port the pod lacks finds no target: the simulator's pods have no vllm-processes.
            optional = {"processes"} if name == "overlays/sim" else set()
            assert {e["port"] for e in endpoints} - optional <= ports, f"{name}: {monitor['metadata']['name']} {ports}"


def _unscoped(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The groups as in the rule file: each alert carries the generator's ALERT_LABELS (what the AlertmanagerConfig's
    route matches, tests/unit/test_k8s_alert_routing.py), which are taken off."""
    alert_labels = ALERT_LABELS
    out = []
    for group in groups:
        rules = []
        for rule in group["rules"]:
            if "alert" in rule:
                labels = dict(rule["labels"])
                for key, value in alert_labels.items():
                    assert labels.pop(key, None) == value, f"{rule['alert']}: no {key}={value} label"
                rule = {**rule, "labels": labels}
            rules.append(rule)
        out.append({**group, "rules": rules})
    return out


def test_every_rule_file_is_a_prometheus_rule_with_the_same_groups() -> None:
    rules = {
        o["metadata"]["annotations"]["llmwatch/source"]: o
        for o in build("overlays/observability")
        if o["kind"] == "PrometheusRule"
    }
    # The engine-sizing thresholds: compose renders them from .env, the manifests from the engine's ConfigMap.
    sizing = rules.pop("docker-compose.yml configs.prometheus-engine-sizing")
    flags = yaml.safe_load((REPO / "deploy/k8s/base/engine-flags.yaml").read_text())["data"]
    assert _unscoped(sizing["spec"]["groups"]) == yaml.safe_load(engine_sizing.render(REPO, flags))["groups"]
    files = sorted((REPO / "prometheus/rules").glob("*.yml"))
    assert files and sorted(rules) == [f.relative_to(REPO).as_posix() for f in files]
    for path in files:
        rule = rules[path.relative_to(REPO).as_posix()]
        assert _unscoped(rule["spec"]["groups"]) == yaml.safe_load(path.read_text())["groups"]
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_every_dashboard_is_one_sidecar_config_map() -> None:
    maps = [
        o
        for o in build("overlays/observability")
        if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]
    ]
    files = sorted((REPO / "grafana/dashboards").glob("*.json"))
    assert files and len(maps) == len(files)
    by_file = {name: json.loads(text) for m in maps for name, text in m["data"].items()}
    assert all(len(m["data"]) == 1 for m in maps), "one dashboard per ConfigMap"
    for path in files:
        assert by_file[path.name] == json.loads(path.read_text())


def test_logging_stack_names_the_services_eck_creates() -> None:
    obs = build("overlays/observability")
    text = json.dumps(obs)
    for address, (kind, name) in ECK_NAMES.items():
        assert address in text, f"{address} not used"
        obj = find(obs, kind, name)
        if kind == "Logstash":
            assert [s["name"] for s in obj["spec"]["services"]] == ["beats"]
            assert obj["spec"]["services"][0]["service"]["spec"]["ports"][0]["port"] == 5044
        else:
            assert obj["spec"]["http"]["tls"]["selfSignedCertificate"]["disabled"] is True, f"{kind}: http:// needs it"
    job = find(obs, "Job", "setup")
    [container] = containers(job)
    env = {e["name"]: e for e in container["env"]}
    assert env["ELASTIC_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "elasticsearch-es-elastic-user",
        "key": "elastic",
    }


def test_setup_job_sees_the_repository_layout_it_reads() -> None:
    obs = build("overlays/observability")
    [container] = containers(find(obs, "Job", "setup"))
    [volume] = find(obs, "Job", "setup")["spec"]["template"]["spec"]["volumes"]
    [mount] = container["volumeMounts"]
    assert mount["name"] == volume["name"]
    data = find(obs, "ConfigMap", volume["configMap"]["name"])["data"]
    laid_out = {item["path"]: data[item["key"]] for item in volume["configMap"]["items"]}
    script = container["command"][-1]
    assert script.startswith(mount["mountPath"] + "/")
    assert script.removeprefix(mount["mountPath"] + "/") in laid_out
    for folder in ("elasticsearch", "kibana"):
        for path in (REPO / folder).rglob("*"):
            rel = path.relative_to(REPO).as_posix()
            if path.is_file() and "/config/" not in f"/{rel}" and "__pycache__" not in rel:
                assert laid_out.get(rel) == path.read_text(), f"{rel} missing or different in the setup job"


def test_logstash_mounts_compose_pipelines_where_pipelines_yml_points() -> None:
    obs = build("overlays/observability")
    logstash = find(obs, "Logstash", "logstash")
    [container] = logstash["spec"]["podTemplate"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v["configMap"]["name"] for v in logstash["spec"]["podTemplate"]["spec"]["volumes"]}
    files = {f"{mounts[v]}/{key}" for v, cm in volumes.items() for key in find(obs, "ConfigMap", cm)["data"]}
    for pipeline in logstash["spec"]["pipelines"]:
        assert pipeline["path.config"] in files, f"{pipeline['pipeline.id']}: {pipeline['path.config']} not mounted"
    for conf in (REPO / "logstash/pipeline").glob("*.conf"):
        patterns_dirs = re.findall(r'patterns_dir => \["([^"]+)"\]', conf.read_text())
        assert all(d in mounts.values() for d in patterns_dirs), f"{conf.name}: {patterns_dirs}"


# ECK's own volumes (cloud-on-k8s v3.5.0 pkg/controller/logstash/volume/names.go,
# pkg/controller/elasticsearch/volume/names.go): a data claim only lands where ECK mounts it when named like this.
ECK_LOGSTASH_DATA = ("logstash-data", "/usr/share/logstash/data")
ECK_ELASTICSEARCH_DATA = "elasticsearch-data"
ECK_LOGSTASH_VOLUMES = {"logstash-data", "logstash-logs", "config", "elastic-internal-logstash-config"}
ECK_LOGSTASH_VOLUMES |= {"elastic-internal-logstash-pipeline"}


def test_eck_data_claims_use_ecks_volume_names() -> None:
    obs = build("overlays/observability")
    logstash = find(obs, "Logstash", "logstash")
    [claim] = logstash["spec"]["volumeClaimTemplates"]
    name, mount = ECK_LOGSTASH_DATA
    assert claim["metadata"]["name"] == name
    assert logstash["spec"]["config"]["path.data"] == mount, "logstash.yml's path.data must be ECK's data mount"
    ours = {v["name"] for v in logstash["spec"]["podTemplate"]["spec"]["volumes"]}
    assert not ours & ECK_LOGSTASH_VOLUMES, f"volume names ECK uses itself: {ours & ECK_LOGSTASH_VOLUMES}"
    [node_set] = find(obs, "Elasticsearch", "elasticsearch")["spec"]["nodeSets"]
    assert [c["metadata"]["name"] for c in node_set["volumeClaimTemplates"]] == [ECK_ELASTICSEARCH_DATA]


def test_filebeat_sends_each_serving_container_to_its_pipeline() -> None:
    beat = find(build("overlays/observability"), "Beat", "filebeat")
    [provider] = beat["spec"]["config"]["filebeat.autodiscover"]["providers"]
    names = {c["name"] for n in SERVING for o in pod_owners(build(n)) for c in containers(o)}
    routed: dict[str, list[str]] = {}
    for template in provider["templates"]:
        conditions = template["condition"]["and"]
        assert {"equals": {"kubernetes.namespace": NAMESPACE}} in conditions
        for name in names:
            hit = all(
                c.get("equals", {}).get("kubernetes.container.name", name) == name
                and re.search(c.get("regexp", {}).get("kubernetes.container.name", ""), name)
                for c in conditions
                if "kubernetes.container.name" in json.dumps(c)
            )
            if hit:
                routed.setdefault(name, []).extend(template["config"][0]["tags"])
    assert routed == {
        "gateway": ["llm_gateway"],
        "vllm": ["llm_stack"],
        "sim": ["llm_stack"],
        "open-webui": ["llm_stack"],
    }
    assert beat["spec"]["config"]["output.logstash"]["hosts"] == [f"logstash-ls-beats.{NAMESPACE}.svc:5044"]
    policy = find(build("overlays/observability"), "NetworkPolicy", "logstash")
    filebeat = {"beat.k8s.elastic.co/name": "filebeat"}
    assert _policy_allows(policy, filebeat, 5044, beat["metadata"]["namespace"]), "Filebeat cannot reach Logstash"
    assert not _policy_allows(policy, filebeat, 5044, NAMESPACE), "only Filebeat's namespace sends to Logstash"


def _gpu_taint() -> dict[str, str]:
    """The taint the gpu overlay's engine tolerates (any value of it: the GPU Operator's and pools' differ)."""
    engine = find(build("overlays/gpu"), "StatefulSet", "engine")
    [toleration] = pod_template(engine)["spec"]["tolerations"]
    value = toleration.get("value", "present") if toleration.get("operator") != "Exists" else "present"
    return {"key": toleration["key"], "value": value, "effect": toleration["effect"]}


def test_every_daemon_set_runs_on_gpu_nodes() -> None:
    """Filebeat must run where the engine runs, or vLLM's logs never leave the GPU node (ECK adds no tolerations)."""
    taint = _gpu_taint()
    daemons = [d for name in BUILDS for d in daemon_pod_specs(build(name))]
    assert [n for n, _ in daemons] == ["Beat/filebeat"]
    for name, spec in daemons:
        assert tolerates(spec.get("tolerations", []), taint), f"{name} does not tolerate {taint}"
        assert "nodeSelector" not in spec and "affinity" not in spec, f"{name} is kept off some nodes"


def test_toleration_matching_follows_kubernetes() -> None:
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    assert tolerates([{"operator": "Exists"}], taint)
    assert tolerates([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}], taint)
    assert tolerates([{"key": "nvidia.com/gpu", "value": "present"}], taint)
    assert not tolerates([], taint)
    assert not tolerates([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}], taint)
    assert not tolerates([{"key": "nvidia.com/gpu", "value": "true", "operator": "Equal"}], taint)
    assert not tolerates([{"key": "dedicated", "operator": "Exists"}], taint)


def test_policies_in_the_observability_overlay_select_eck_pod_labels() -> None:
    obs = build("overlays/observability")
    names = {(o["kind"], o["metadata"]["name"]) for o in obs if o["kind"] in ECK_POD_LABELS}
    eck_pods = {(ECK_POD_LABELS[kind], name) for kind, name in names}
    for policy in (o for o in obs if o["kind"] == "NetworkPolicy"):
        selectors = [policy["spec"]["podSelector"]]
        selectors += [
            p["podSelector"] for r in policy["spec"].get("ingress", []) for p in r.get("from", []) if "podSelector" in p
        ]
        for selector in selectors:
            for key, value in selector.get("matchLabels", {}).items():
                if "k8s.elastic.co" in key:
                    assert (key, value) in eck_pods, f"{policy['metadata']['name']}: {key}={value} is no ECK pod"


def test_alertmanager_config_routes_everything_to_the_relay() -> None:
    obs = build("overlays/observability")
    config = find(obs, "AlertmanagerConfig", "llmwatch")["spec"]
    [receiver] = config["receivers"]
    assert config["route"]["receiver"] == receiver["name"]
    assert all(r["receiver"] == receiver["name"] for r in config["route"]["routes"])
    relay = find(build("overlays/gpu"), "Service", "relay")
    [port] = relay["spec"]["ports"]
    assert receiver["webhookConfigs"] == [
        {"url": f"http://relay.{NAMESPACE}.svc:{port['port']}/alertmanager", "sendResolved": True}
    ]


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("k8s_generate", REPO / "deploy/k8s/generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_copies_match_their_sources() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy/k8s/generate.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_generator_check_names_a_stale_copy(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    generate = _generator()
    monkeypatch.setattr(generate, "OUT", tmp_path)
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0
    dashboards = tmp_path / generate.GENERATED / "dashboards.yaml"
    dashboards.write_text(dashboards.read_text().replace("llmwatch", "x"))
    assert generate.main(["--check"]) == 1
    assert "dashboards.yaml is stale" in capsys.readouterr().err


_LOGSTASH_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
_KUBERNETES_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "k": 1000, "M": 1000**2, "G": 1000**3}


def _logstash_bytes(text: str) -> int:
    """A Logstash byte setting (`1gb`): units of 1024, as Logstash's ByteValue reads them."""
    match = re.fullmatch(r"(\d+)\s*(b|kb|mb|gb|tb)", str(text).strip().lower())
    assert match, f"cannot read Logstash byte value {text!r}"
    return int(match.group(1)) * _LOGSTASH_UNITS[match.group(2)]


def _quantity_bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|k|M|G)?", text)
    assert match, f"cannot read Kubernetes quantity {text!r}"
    return int(match.group(1)) * _KUBERNETES_UNITS.get(match.group(2) or "", 1)


def logstash_queue_bytes(config: dict[str, Any], pipelines: list[dict[str, Any]]) -> int:
    """The most the queues can hold on disk: per pipeline, its persisted queue and its dead-letter queue.

    Each pipeline has its own of each (logstash.yml's values, overridden per pipeline in pipelines.yml). Every
    pipeline with the dead-letter queue on is counted, whether or not its outputs write to it.
    """
    total = 0
    for pipeline in pipelines:
        settings = {**config, **pipeline}
        if settings.get("queue.type", "memory") == "persisted":
            total += _logstash_bytes(settings.get("queue.max_bytes", "1024mb"))
        if settings.get("dead_letter_queue.enable", False):
            total += _logstash_bytes(settings.get("dead_letter_queue.max_bytes", "1024mb"))
    return total


def test_logstash_claim_holds_every_queue_when_full() -> None:
    """Logstash only warns when its queues outgrow the volume, then fills the disk (docs/kubernetes.md, sizing)."""
    logstash = find(build("overlays/observability"), "Logstash", "logstash")
    [claim] = logstash["spec"]["volumeClaimTemplates"]
    size = _quantity_bytes(claim["spec"]["resources"]["requests"]["storage"])
    queues = logstash_queue_bytes(logstash["spec"]["config"], logstash["spec"]["pipelines"])
    assert queues == 6 * 1024**3, "3 pipelines x (1 GiB queue + 1 GiB dead-letter queue), as docs/kubernetes.md says"
    assert size >= queues + 1024**3, f"claim {size} B < queues {queues} B + 1 GiB for the rest of path.data"
    assert logstash_queue_bytes({"queue.type": "persisted", "queue.max_bytes": "4gb"}, [{}, {}]) == 8 * 1024**3


def test_elasticsearch_starts_without_raising_vm_max_map_count() -> None:
    """ECK enforces the bootstrap checks; a node's default vm.max_map_count fails the mmap one unless mmap is off."""
    [node_set] = find(build("overlays/observability"), "Elasticsearch", "elasticsearch")["spec"]["nodeSets"]
    assert node_set["config"]["node.store.allow_mmap"] is False
    init = node_set["podTemplate"]["spec"].get("initContainers", [])
    assert not any("sysctl" in json.dumps(c) for c in init), "mmap is off: no privileged sysctl init container"


def test_documented_chart_values_keep_the_exemplar_link() -> None:
    """As compose: exemplar storage on, and an exemplar's request_id opens that request's access-log line."""
    values = documented_chart_values()
    assert "exemplar-storage" in values["prometheus"]["prometheusSpec"]["enableFeatures"]
    link = values["grafana"]["sidecar"]["datasources"]["exemplarTraceIdDestinations"]
    compose = yaml.safe_load((REPO / "grafana/provisioning/datasources/datasources.yml").read_text())
    [prometheus] = [d for d in compose["datasources"] if d["type"] == "prometheus"]
    [compose_link] = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert link["traceIdLabelName"] == compose_link["name"] == "request_id"
    [elasticsearch] = [d for d in values["grafana"]["additionalDataSources"] if d["type"] == "elasticsearch"]
    assert link["datasourceUid"] == elasticsearch["uid"]
    assert elasticsearch["jsonData"]["index"].startswith("logs-llm_gateway-")
    assert "alertmanagerConfigMatcherStrategy" not in values["alertmanager"]["alertmanagerSpec"]
