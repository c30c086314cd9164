"""Every pod template passes Pod Security admission at the level its namespace enforces
(tests/support/pod_security.py), and every pod that can meets `restricted`.

ECK resources are judged as ECK will create their pods: where our podTemplate leaves a securityContext unset, ECK
fills in its default (cloud-on-k8s v3.5.0, pkg/controller/common/defaults/pod_template.go WithPodSecurityContext /
WithContainersSecurityContext: only when nil). Its defaults, for stack 9.x:
- Elasticsearch: pod, pkg/controller/elasticsearch/nodespec/podspec.go (fsGroup 1000, RuntimeDefault seccomp);
  containers, pkg/controller/elasticsearch/securitycontext/securitycontext.go `For` (privileged false,
  allowPrivilegeEscalation false, drop ALL, runAsNonRoot true).
- Kibana: pkg/controller/kibana/securitycontext.go (pod: fsGroup 1000, RuntimeDefault seccomp; containers:
  allowPrivilegeEscalation false, drop ALL, privileged false, runAsUser/runAsGroup 1000).
- Logstash: pkg/controller/logstash/pod.go DefaultSecurityContext (pod only: fsGroup 1000, RuntimeDefault seccomp).
- Beat: none (pkg/controller/beat/common/pod.go); ECK adds a hostPath data volume to a DaemonSet Beat.
Containers ECK injects itself (init containers) are not in the manifests; docs/kubernetes.md says what only a cluster
shows about them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.k8s import BUILDS, LOGS_NAMESPACE, NAMESPACE, Obj, build, pod_owners, pod_template
from tests.support.pod_security import violations

pytestmark = pytest.mark.unit

SECCOMP = {"seccompProfile": {"type": "RuntimeDefault"}}
ECK_POD = {"fsGroup": 1000, **SECCOMP}
ECK_DEFAULTS: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
    "Elasticsearch": (
        ECK_POD,
        {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    ),
    "Kibana": (
        ECK_POD,
        {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsUser": 1000,
            "runAsGroup": 1000,
        },
    ),
    "Logstash": (ECK_POD, None),
    "Beat": (None, None),
}
# Beat DaemonSets: the node's data folder ECK mounts (pkg/controller/beat/common/pod.go createDataVolume).
ECK_BEAT_DATA = {"name": "beat-data", "hostPath": {"path": "/var/lib/llmwatch-logs/filebeat/filebeat-data"}}
# The pods that run as root, and why (docs/kubernetes.md, "Pod Security"): the vLLM and Open WebUI images have no
# other user; Filebeat reads every pod's log files on the node.
ROOT = {"vllm", "open-webui", "filebeat"}


def _with_eck_defaults(kind: str, template: dict[str, Any], daemon: bool) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(template.get("spec", {}))
    pod, container = ECK_DEFAULTS[kind]
    if pod is not None and "securityContext" not in spec:
        spec["securityContext"] = copy.deepcopy(pod)
    for c in spec.get("containers", []):
        if container is not None and "securityContext" not in c:
            c["securityContext"] = copy.deepcopy(container)
    if daemon:
        spec.setdefault("volumes", []).append(ECK_BEAT_DATA)
    return spec


def pods(objects: tuple[Obj, ...]) -> Iterator[tuple[str, str, dict[str, Any], dict[str, str]]]:
    """(name, namespace, pod spec, pod annotations) of every pod the objects create, ECK's with ECK's defaults."""
    for owner in pod_owners(objects):
        template = pod_template(owner)
        name = f"{owner['kind']}/{owner['metadata']['name']}"
        yield name, owner["metadata"]["namespace"], template["spec"], template["metadata"].get("annotations", {})
    for obj in objects:
        if obj["kind"] not in ECK_DEFAULTS:
            continue
        spec = obj["spec"]
        templates = [(spec["podTemplate"], False)] if "podTemplate" in spec else []
        templates += [(n["podTemplate"], False) for n in spec.get("nodeSets", [])]
        if "daemonSet" in spec:
            templates.append((spec["daemonSet"]["podTemplate"], True))
        for template, daemon in templates:
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            pod = _with_eck_defaults(obj["kind"], template, daemon)
            yield name, obj["metadata"]["namespace"], pod, template.get("metadata", {}).get("annotations", {})


def enforced_levels() -> dict[str, str]:
    """{namespace: the level its `pod-security.kubernetes.io/enforce` label sets}, from the Namespace objects."""
    levels = {}
    for name in BUILDS:
        for obj in build(name):
            if obj["kind"] == "Namespace":
                labels = obj["metadata"].get("labels", {})
                levels[obj["metadata"]["name"]] = labels.get("pod-security.kubernetes.io/enforce", "privileged")
    return levels


def all_pods() -> list[tuple[str, str, dict[str, Any], dict[str, str]]]:
    """Every distinct pod of every build (the engine is vLLM in one overlay, the simulator in another)."""
    found = {}
    for b in BUILDS:
        for name, namespace, spec, notes in pods(build(b)):
            engine = tuple(c["name"] for c in spec["containers"])
            found[(namespace, name, engine)] = (f"{name} ({', '.join(engine)})", namespace, spec, notes)
    return [found[key] for key in sorted(found)]


def test_namespaces_declare_their_levels() -> None:
    levels = enforced_levels()
    assert levels == {NAMESPACE: "baseline", LOGS_NAMESPACE: "privileged"}
    for name in BUILDS:
        for obj in build(name):
            if obj["kind"] == "Namespace" and obj["metadata"]["name"] == NAMESPACE:
                labels = obj["metadata"]["labels"]
                assert labels["pod-security.kubernetes.io/warn"] == "restricted"
                assert labels["pod-security.kubernetes.io/audit"] == "restricted"


def test_every_pod_passes_its_namespaces_level() -> None:
    levels = enforced_levels()
    checked = all_pods()
    assert len(checked) == 10, [p[0] for p in checked]
    for name, namespace, spec, notes in checked:
        level = levels[namespace]
        found = violations(spec, level, notes)
        assert not found, f"{namespace} {name} at {level}: {found}"


def test_every_pod_that_can_meets_restricted() -> None:
    """Non-root wherever the image allows it; the root pods are the three known ones, and only for that reason."""
    for name, namespace, spec, notes in all_pods():
        containers = {c["name"] for c in spec["containers"]}
        found = violations(spec, "restricted", notes)
        if containers & ROOT:
            allowed = ("runAsNonRoot", "runAsUser 0", "capabilities", "hostPath", "volume")
            assert all(any(a in v for a in allowed) for v in found), f"{name}: {found}"
        else:
            assert not found, f"{namespace} {name}: {found}"


def test_every_pod_runs_under_runtime_default_seccomp_without_privilege_escalation() -> None:
    for name, _, spec, _ in all_pods():
        pod_seccomp = spec.get("securityContext", {}).get("seccompProfile", {}).get("type")
        for container in spec["containers"]:
            sc = container.get("securityContext", {})
            assert sc.get("seccompProfile", {}).get("type", pod_seccomp) == "RuntimeDefault", f"{name} seccomp"
            assert sc.get("allowPrivilegeEscalation") is False, f"{name}: {container['name']} may escalate"


def test_the_checker_refuses_what_the_standard_forbids() -> None:
    good = {
        "securityContext": {"runAsNonRoot": True, **SECCOMP},
        "containers": [
            {"name": "c", "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
        ],
        "volumes": [{"name": "v", "emptyDir": {}}],
    }
    assert violations(good, "restricted") == []

    def bad(change: dict[str, Any], container: dict[str, Any] | None = None) -> dict[str, Any]:
        spec = copy.deepcopy(good) | change
        spec["containers"][0]["securityContext"] |= container or {}
        return spec

    host_path = bad({"volumes": [{"name": "logs", "hostPath": {"path": "/var/log"}}]})
    assert violations(host_path, "baseline") and violations(host_path, "privileged") == []
    assert violations(bad({}, {"privileged": True}), "baseline")
    assert violations(bad({}, {"capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]}}), "baseline")
    assert violations(bad({"hostNetwork": True}), "baseline")
    assert violations(bad({"securityContext": {"runAsNonRoot": True}}), "restricted"), "no seccomp profile"
    assert violations(bad({"securityContext": SECCOMP}), "restricted"), "may run as root"
    assert violations(bad({}, {"runAsUser": 0}), "restricted")
    assert violations(bad({}, {"allowPrivilegeEscalation": True}), "restricted")
    assert violations(bad({}, {"capabilities": {"drop": ["NET_RAW"]}}), "restricted")
    assert violations(
        bad({"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "Unconfined"}}}), "baseline"
    )
    with pytest.raises(ValueError, match="unknown Pod Security level"):
        violations(good, "strict")
