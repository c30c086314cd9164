"""alertmanager/alertmanager.yml (the routes, inhibitions and receivers, written once), rendered for each target.

- compose: alertmanager/entrypoint.sh, in the Alertmanager image (no Python there), fills in the optional generic
  webhook's URL from the environment, or drops that receiver config (the block between its BEGIN/END markers).
- `make demo` and the live tests: the file as entrypoint.sh renders it with no webhook set (the script itself is run,
  so the markers are read in one place), with each `http://service:port` pointed at the local process.
- Kubernetes: the routes and inhibitions as prometheus-operator's AlertmanagerConfig, with the relay as receiver.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from llmwatch.render.k8s.objects import ALERT_LABELS, NAMESPACE, PART_OF, RELEASE, SourceError, dump

SOURCE = "alertmanager/alertmanager.yml"
ENTRYPOINT = "alertmanager/entrypoint.sh"
# Alertmanager runs in kube-prometheus-stack's namespace, so the relay is named with its own.
RELAY_RECEIVER = "relay"
RELAY_URL = f"http://relay.{NAMESPACE}.svc:9099/alertmanager"
_URL_HOST = re.compile(r"http://([a-z0-9-]+):(\d+)")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)"(.*)"')


def as_compose_runs_it(repo: Path, webhook: str = "") -> str:
    """The config compose's Alertmanager runs on: entrypoint.sh's rendering of the source with this webhook URL."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LLMWATCH_ALERTMANAGER_CONFIG": str(repo / SOURCE),
        "LLMWATCH_ALERT_WEBHOOK_URL": webhook,
    }
    done = subprocess.run(
        ["sh", str(repo / ENTRYPOINT), "render"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise SourceError(f"{ENTRYPOINT} render failed: {done.stderr.strip()}")
    return done.stdout


def local(repo: Path, ports: Mapping[str, int]) -> str:
    """The config compose would run with no generic webhook, each http://service:port URL at 127.0.0.1:``ports``."""
    config: dict[str, Any] = yaml.safe_load(as_compose_runs_it(repo))

    def swap(match: re.Match[str]) -> str:
        port = ports.get(match.group(1))
        return match.group(0) if port is None else f"http://127.0.0.1:{port}"

    for receiver in config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = _URL_HOST.sub(swap, hook["url"])
    return yaml.safe_dump(config, sort_keys=False)


def _matchers(strings: list[str]) -> list[dict[str, str]]:
    """Alertmanager's `name="value"` matcher strings as the AlertmanagerConfig CRD's objects."""
    out = []
    for text in strings:
        match = _MATCHER.fullmatch(text)
        if match is None:
            raise SourceError(f"{SOURCE}: cannot convert matcher {text!r}; update llmwatch/render/alertmanager.py")
        name, op, value = match.groups()
        out.append({"name": name, "matchType": op, "value": value})
    return out


_TIMING = {"group_by": "groupBy", "group_wait": "groupWait", "group_interval": "groupInterval"}
_TIMING["repeat_interval"] = "repeatInterval"


def _route(route: dict[str, Any], receiver: str) -> dict[str, Any]:
    out: dict[str, Any] = {"receiver": receiver}
    if "matchers" in route:
        out["matchers"] = _matchers(route["matchers"])
    out.update({camel: route[snake] for snake, camel in _TIMING.items() if snake in route})
    if "routes" in route:
        out["routes"] = [_route(child, receiver) for child in route["routes"]]
    return out


def operator_config(repo: Path) -> str:
    """The source's routes and inhibitions as an AlertmanagerConfig, with the relay as the one receiver."""
    source = yaml.safe_load((repo / SOURCE).read_text())
    inhibit = [
        {
            "sourceMatch": _matchers(rule["source_matchers"]),
            "targetMatch": _matchers(rule["target_matchers"]),
            "equal": rule["equal"],
        }
        for rule in source["inhibit_rules"]
    ]
    # Only llmwatch's alerts: the operator puts this route first with `continue: true`, so every alert meets it.
    # (Compose's root route has no matchers: its Alertmanager receives llmwatch's alerts only.)
    ours = [{"name": "part_of", "matchType": "=", "value": ALERT_LABELS["part_of"]}]
    route = _route(source["route"], RELAY_RECEIVER)
    route = {"receiver": route.pop("receiver"), "matchers": ours + route.pop("matchers", []), **route}
    config = {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": {"name": "llmwatch", "labels": {**PART_OF, **RELEASE}},
        "spec": {
            "route": route,
            "receivers": [{"name": RELAY_RECEIVER, "webhookConfigs": [{"url": RELAY_URL, "sendResolved": True}]}],
            "inhibitRules": inhibit,
        },
    }
    return dump([config], SOURCE)
