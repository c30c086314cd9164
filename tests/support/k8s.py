"""Readers for the Kubernetes manifests: `kubectl kustomize` builds of deploy/k8s, and the pods inside them."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO, need_binary

K8S = REPO / "deploy/k8s"
# Everything an operator applies, and the optional HPA component on top of the gpu overlay.
BUILDS = ("base", "overlays/gpu", "overlays/sim", "overlays/observability", "gpu+hpa-in-flight")
SERVING = ("overlays/gpu", "overlays/sim")
NAMESPACE = "llmwatch"
# Filebeat's namespace (the observability overlay's filebeat.yaml): it needs a Pod Security level llmwatch does not.
LOGS_NAMESPACE = "llmwatch-logs"
# Where the npm package with prometheus-operator's schemas is installed (scripts/install.sh).
MODELS_DIR = Path.home() / ".cache/llmwatch/k8s-models"
POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}

Obj = dict[str, Any]


class _Loader(yaml.SafeLoader):
    """YAML 1.2 as kustomize writes it: PyYAML would read a bare `=` (an Alertmanager matchType) as a special tag."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


def load_all(text: str) -> list[Obj]:
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc]


def kubectl() -> str:
    """The kubectl scripts/install-k8s-tools.sh pins (linked into the venv), else one on PATH."""
    pinned = Path(sys.executable).parent / "kubectl"
    return str(pinned) if pinned.exists() else need_binary("kubectl")


def _kustomize(path: Path) -> str:
    result = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return result.stdout


@functools.cache
def build(name: str) -> tuple[Obj, ...]:
    """The objects `kubectl kustomize` renders for one entry of BUILDS."""
    if name == "gpu+hpa-in-flight":
        # A throwaway kustomization that adds the component to the gpu overlay, as docs/kubernetes.md tells operators;
        # kustomize takes only relative paths to other kustomizations.
        with tempfile.TemporaryDirectory() as tmp:
            rel = os.path.relpath(K8S, tmp)
            (Path(tmp) / "kustomization.yaml").write_text(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                f"resources: [{rel}/overlays/gpu]\ncomponents: [{rel}/components/hpa-in-flight]\n"
            )
            return tuple(load_all(_kustomize(Path(tmp))))
    return tuple(load_all(_kustomize(K8S / name)))


def find(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind}/{name} in the build")


def pod_template(obj: Obj) -> Obj:
    template: Obj = obj["spec"]["template"]
    return template


def pod_owners(objects: tuple[Obj, ...]) -> Iterator[Obj]:
    return (obj for obj in objects if obj["kind"] in POD_OWNERS)


def containers(obj: Obj) -> list[Obj]:
    found: list[Obj] = pod_template(obj)["spec"]["containers"]
    return found


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions with In/NotIn/Exists) or a plain Service selector."""
    match_labels = selector.get("matchLabels", {} if "matchExpressions" in selector else selector)
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def env_example() -> dict[str, str]:
    """.env.example's NAME=value lines."""
    pairs = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, str]) -> bool:
    """Whether a pod with these tolerations may run on a node with this taint.

    Kubernetes' own rule, k8s.io/api core/v1 toleration.go `ToleratesTaint`: an effect and a key, when given, must
    equal the taint's; operator Exists then matches any value, Equal (or none) the same value.
    """
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint["effect"]:
            continue
        if toleration.get("key") and toleration["key"] != taint["key"]:
            continue
        operator = toleration.get("operator", "Equal")
        if operator == "Exists" or (operator == "Equal" and toleration.get("value", "") == taint.get("value", "")):
            return True
    return False


def daemon_pod_specs(objects: tuple[Obj, ...]) -> Iterator[tuple[str, Obj]]:
    """(name, pod spec) of everything that runs one pod per node: DaemonSets, and ECK Beats in daemonSet mode."""
    for obj in objects:
        if obj["kind"] == "DaemonSet":
            yield f"DaemonSet/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Beat" and "daemonSet" in obj["spec"]:
            yield f"Beat/{obj['metadata']['name']}", obj["spec"]["daemonSet"]["podTemplate"]["spec"]


def documented_chart_values() -> dict[str, Any]:
    """The kube-prometheus-stack values docs/kubernetes.md gives operators (its one block with alertmanagerSpec)."""
    text = (REPO / "docs/kubernetes.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if "alertmanagerSpec" in b]
    assert len(blocks) == 1, "docs/kubernetes.md: expected one values block with alertmanager.alertmanagerSpec"
    values: dict[str, Any] = yaml.safe_load(blocks[0])
    return values
